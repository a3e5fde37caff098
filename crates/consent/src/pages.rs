//! Page templates and their data.

use askama::Template;

/// The error page for a request that cannot be redirected back to a client.
#[derive(Debug, Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    /// The name shown in the title bar.
    pub service_name: &'a str,
    /// The heading.
    pub title: &'a str,
    /// What happened, in words the customer understands.
    pub message: &'a str,
    /// A reference the customer can quote to the bank's support (the request id).
    pub reference: Option<&'a str>,
}

impl ErrorPage<'_> {
    /// Renders the page.
    ///
    /// # Errors
    /// If askama fails to render, which only a template bug can cause.
    pub fn to_html(&self) -> Result<String, askama::Error> {
        self.render()
    }
}

/// The stylesheet every page links (served at `/assets/portcullis.css`, so that the
/// Content-Security-Policy can forbid inline styles).
pub const STYLESHEET: &str = include_str!("../assets/portcullis.css");

/// The login page.
#[derive(Debug, Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    /// The bank's name.
    pub service_name: &'a str,
    /// The client asking.
    pub client_name: &'a str,
    /// The interaction identifier (also in a cookie: the form's CSRF token).
    pub interaction: &'a str,
    /// The username to show again after a failure.
    pub username: &'a str,
    /// A failure message that says nothing about which part was wrong.
    pub error: Option<&'a str>,
}

/// The second-factor page.
#[derive(Debug, Template)]
#[template(path = "totp.html")]
pub struct TotpPage<'a> {
    /// The bank's name.
    pub service_name: &'a str,
    /// The interaction identifier.
    pub interaction: &'a str,
    /// A failure message.
    pub error: Option<&'a str>,
}

/// One `authorization_details` entry in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetailView {
    /// What it is, as a heading.
    pub heading: String,
    /// What it allows, line by line.
    pub lines: Vec<String>,
    /// Whether the customer chooses the accounts it covers.
    pub choose_accounts: bool,
    /// Whether the customer chooses the account a payment is made from.
    pub choose_debtor: bool,
}

/// An account the customer can choose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountChoice {
    /// Its identifier.
    pub id: String,
    /// How it is shown: name and masked IBAN.
    pub label: String,
}

/// The consent page.
#[derive(Debug, Template)]
#[template(path = "consent.html")]
pub struct ConsentPage<'a> {
    /// The bank's name.
    pub service_name: &'a str,
    /// The client asking.
    pub client_name: &'a str,
    /// Its logo, if registered (an https URL).
    pub logo_uri: Option<&'a str>,
    /// The scopes, in plain words.
    pub scopes: Vec<String>,
    /// The rich authorization details, in plain words.
    pub details: Vec<DetailView>,
    /// The customer's accounts, for the choices.
    pub accounts: Vec<AccountChoice>,
    /// The interaction identifier.
    pub interaction: &'a str,
}

/// A scope in words a customer understands; unknown scopes are shown as they are.
#[must_use]
pub fn describe_scope(scope: &str) -> String {
    match scope {
        "openid" => "Confirm who you are".into(),
        "profile" => "See your name and basic profile".into(),
        "email" => "See your email address".into(),
        "phone" => "See your phone number".into(),
        "address" => "See your postal address".into(),
        "accounts" => "See information about your accounts".into(),
        "payments" => "Start payments from your accounts".into(),
        "offline_access" => "Keep access while you are not using it".into(),
        other => format!("Access: {other}"),
    }
}

/// An `authorization_details` entry (already checked against its type's schema) in words.
#[must_use]
pub fn describe_detail(detail: &serde_json::Value) -> DetailView {
    let text = |v: &serde_json::Value, key: &str| {
        v.get(key)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let strings = |key: &str| -> Vec<String> {
        detail
            .get(key)
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(serde_json::Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    match detail.get("type").and_then(serde_json::Value::as_str) {
        Some("account_information") => {
            let mut lines: Vec<String> = strings("actions")
                .iter()
                .map(|action| {
                    match action.as_str() {
                        "list_accounts" => "See the list of your accounts",
                        "read_balances" => "See your balances",
                        "read_transactions" => "See your transactions",
                        "read_account_details" => "See account details such as the IBAN",
                        other => other,
                    }
                    .to_owned()
                })
                .collect();
            if let Some(expires) = detail.get("expires_at").and_then(serde_json::Value::as_i64) {
                let date = time::OffsetDateTime::from_unix_timestamp(expires)
                    .map(|t| t.date().to_string())
                    .unwrap_or_default();
                lines.push(format!("Until {date}"));
            }
            DetailView {
                heading: "Account information".into(),
                lines,
                choose_accounts: true,
                choose_debtor: false,
            }
        }
        Some("payment_initiation") => {
            let amount = detail.get("instructedAmount").cloned().unwrap_or_default();
            let creditor = detail.get("creditorAccount").cloned().unwrap_or_default();
            let mut lines = vec![
                format!(
                    "Pay {} {} to {}",
                    text(&amount, "amount"),
                    text(&amount, "currency"),
                    text(detail, "creditorName")
                ),
                format!("Their account: {}", text(&creditor, "iban")),
            ];
            let reference = text(detail, "remittanceInformation");
            if !reference.is_empty() {
                lines.push(format!("Reference: {reference}"));
            }
            lines.push("One payment only".into());
            DetailView {
                heading: "A payment".into(),
                lines,
                choose_accounts: false,
                choose_debtor: true,
            }
        }
        other => {
            let mut lines = strings("actions");
            lines.extend(strings("locations").into_iter().map(|l| format!("At {l}")));
            DetailView {
                heading: format!("Access of type {}", other.unwrap_or("unknown")),
                lines,
                choose_accounts: false,
                choose_debtor: false,
            }
        }
    }
}

/// The account page: the customer's standing consents, each with a form to withdraw it, and
/// those that ended recently.
#[derive(Debug, Template)]
#[template(path = "account.html")]
pub struct AccountPage<'a> {
    /// The bank's name.
    pub service_name: &'a str,
    /// The consents that stand, newest first.
    pub grants: Vec<GrantView>,
    /// The consents withdrawn or lapsed recently.
    pub ended: Vec<EndedGrantView>,
    /// The session's CSRF token, in every withdrawal form.
    pub csrf: &'a str,
    /// A confirmation of what was just done.
    pub notice: Option<&'a str>,
}

/// A standing consent as the account page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantView {
    /// Where its withdrawal form posts.
    pub withdraw_path: String,
    /// The client's name (its `client_id` when it registered none).
    pub client_name: String,
    /// The client's logo: an https URL, or none.
    pub logo_uri: Option<String>,
    /// The scopes, in plain words.
    pub scopes: Vec<String>,
    /// The rich authorization details in plain words, with the accounts chosen.
    pub details: Vec<DetailView>,
    /// When it was given.
    pub given: String,
    /// When it expires, in words.
    pub expires: String,
    /// When it was last used, in words.
    pub last_used: String,
}

/// A consent that ended: whose, and how and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedGrantView {
    /// The client's name.
    pub client_name: String,
    /// How and when it ended, in words.
    pub ended: String,
}

/// The account page's login: the password form, or the second-factor form once the password
/// was right.
#[derive(Debug, Template)]
#[template(path = "account_login.html")]
pub struct AccountLoginPage<'a> {
    /// The bank's name.
    pub service_name: &'a str,
    /// The login's CSRF token (also in a cookie).
    pub csrf: &'a str,
    /// The username to show again after a failure.
    pub username: &'a str,
    /// A failure message that says nothing about which part was wrong.
    pub error: Option<&'a str>,
    /// Whether this is the second-factor step.
    pub second_factor: bool,
}

/// An instant as the customer's pages show it: "21 November 2026, 14:03 UTC".
#[must_use]
pub fn describe_instant(at: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[day padding:none] [month repr:long] [year], [hour]:[minute] UTC"
    );
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

/// A granted `authorization_details` entry in words (the account page): what
/// [`describe_detail`] says, and the accounts the customer chose, named by `label` (an account's
/// identifier in, its label out).
#[must_use]
pub fn describe_granted_detail(
    detail: &serde_json::Value,
    label: impl Fn(&str) -> String,
) -> DetailView {
    let mut view = describe_detail(detail);
    view.choose_accounts = false;
    view.choose_debtor = false;
    let name = |account: &serde_json::Value| match account {
        serde_json::Value::String(id) => Some(label(id)),
        serde_json::Value::Object(fields) => ["id", "iban"]
            .iter()
            .find_map(|k| fields.get(*k).and_then(serde_json::Value::as_str))
            .map(&label),
        _ => None,
    };
    let accounts: Vec<String> = detail
        .get("accounts")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(name)
        .collect();
    if !accounts.is_empty() {
        view.lines
            .push(format!("Accounts: {}", accounts.join(", ")));
    }
    if let Some(debtor) = detail.get("debtorAccount").and_then(name) {
        view.lines.push(format!("From: {debtor}"));
    }
    view
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_page_escapes_everything_it_shows() {
        let html = ErrorPage {
            service_name: "Bank",
            title: "Request refused",
            message: "redirect_uri <script>alert(1)</script> is not registered",
            reference: Some("\"><img src=x>"),
        }
        .to_html()
        .unwrap();
        assert!(html.contains("<h1>Request refused</h1>"));
        assert!(!html.contains("<script>"));
        assert!(
            html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<img"));
        assert!(html.contains("<title>Request refused · Bank</title>"));
    }

    #[test]
    fn consent_page_shows_client_scopes_and_details_in_words_escaped() {
        let payment = serde_json::json!({
            "type": "payment_initiation",
            "instructedAmount": {"currency": "EUR", "amount": "123.50"},
            "creditorName": "Merchant <b>A</b>",
            "creditorAccount": {"iban": "DE02120300000000202051"},
            "remittanceInformation": "Ref 42"
        });
        let accounts =
            serde_json::json!({"type": "account_information", "actions": ["read_balances"]});
        let html = ConsentPage {
            service_name: "Bank",
            client_name: "TPP <script>",
            logo_uri: Some("https://tpp.example/logo.png\"onerror=\"x"),
            scopes: vec![describe_scope("openid"), describe_scope("accounts")],
            details: vec![describe_detail(&accounts), describe_detail(&payment)],
            accounts: vec![AccountChoice {
                id: "acc-1".into(),
                label: "Current account ·· 2051".into(),
            }],
            interaction: "i-1",
        }
        .render()
        .unwrap();
        assert!(
            html.contains("Pay 123.50 EUR to Merchant &#60;b&#62;A&#60;/b&#62;")
                || html.contains("Pay 123.50 EUR to Merchant &lt;b&gt;A&lt;/b&gt;"),
            "{html}"
        );
        assert!(html.contains("See your balances"));
        assert!(html.contains("Confirm who you are"));
        assert!(!html.contains("<script>"));
        assert!(!html.contains("\"onerror"));
        assert!(html.contains(r#"name="account" value="acc-1""#));
        assert!(html.contains(r#"name="debtor_account" value="acc-1""#));
        assert!(html.contains(r#"name="interaction" value="i-1""#));
        assert!(html.contains(r#"href="/account""#), "manage your consents");
        assert_eq!(describe_scope("x:y"), "Access: x:y");
    }

    #[test]
    fn login_and_totp_pages_carry_the_interaction_and_no_detail_of_failures() {
        let html = LoginPage {
            service_name: "Bank",
            client_name: "TPP",
            interaction: "i-2",
            username: "alice\"><",
            error: Some("The username or password is not right."),
        }
        .render()
        .unwrap();
        assert!(html.contains(r#"action="/authorize/login""#));
        assert!(html.contains(r#"value="i-2""#));
        assert!(!html.contains("alice\"><"));
        let totp = TotpPage {
            service_name: "Bank",
            interaction: "i-3",
            error: None,
        }
        .render()
        .unwrap();
        assert!(totp.contains(r#"autocomplete="one-time-code""#));
    }

    #[test]
    fn account_page_lists_grants_in_words_escaped_with_a_withdrawal_form_each() {
        let detail = serde_json::json!({
            "type": "account_information",
            "actions": ["read_balances"],
            "accounts": ["acc-1", {"iban": "DE02"}]
        });
        let label = |id: &str| {
            if id == "acc-1" {
                "Current account ·· 2051".to_owned()
            } else {
                format!("<{id}>")
            }
        };
        let view = describe_granted_detail(&detail, label);
        assert_eq!(
            view.lines,
            vec![
                "See your balances".to_owned(),
                "Accounts: Current account ·· 2051, <DE02>".to_owned()
            ]
        );
        assert!(!view.choose_accounts);
        let payment = describe_granted_detail(
            &serde_json::json!({"type": "payment_initiation", "debtorAccount": {"id": "acc-1"}}),
            label,
        );
        assert!(
            payment
                .lines
                .contains(&"From: Current account ·· 2051".to_owned())
        );

        let html = AccountPage {
            service_name: "Bank",
            grants: vec![GrantView {
                withdraw_path: "/account/grants/g-1/withdraw".into(),
                client_name: "TPP <script>alert(1)</script>".into(),
                logo_uri: Some("https://tpp.example/logo.png\"onerror=\"x".into()),
                scopes: vec![describe_scope("accounts")],
                details: vec![view],
                given: describe_instant(
                    time::OffsetDateTime::from_unix_timestamp(1_795_000_000).unwrap(),
                ),
                expires: "Until you withdraw it".into(),
                last_used: "Not used yet".into(),
            }],
            ended: vec![EndedGrantView {
                client_name: "Old <b>TPP</b>".into(),
                ended: "withdrawn".into(),
            }],
            csrf: "c-1",
            notice: Some("Done <i>now</i>"),
        }
        .render()
        .unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<b>TPP") && !html.contains("<i>now"));
        assert!(!html.contains("\"onerror"));
        assert!(!html.contains("<DE02>"));
        assert!(html.contains(r#"action="/account/grants/g-1/withdraw""#));
        assert!(html.contains(r#"name="csrf" value="c-1""#));
        assert!(html.contains("See information about your accounts"));
        assert!(html.contains("Current account ·· 2051"));
        assert!(html.contains("18 November 2026, 11:06 UTC"), "{html}");
        assert!(html.contains("Until you withdraw it"));

        let login = AccountLoginPage {
            service_name: "Bank",
            csrf: "c-2",
            username: "",
            error: None,
            second_factor: false,
        }
        .render()
        .unwrap();
        assert!(login.contains(r#"action="/account/login""#));
        assert!(login.contains(r#"name="csrf" value="c-2""#));
        let totp = AccountLoginPage {
            service_name: "Bank",
            csrf: "c-3",
            username: "",
            error: Some("wrong"),
            second_factor: true,
        }
        .render()
        .unwrap();
        assert!(totp.contains(r#"action="/account/totp""#));
        assert!(totp.contains(r#"autocomplete="one-time-code""#));
    }
}
