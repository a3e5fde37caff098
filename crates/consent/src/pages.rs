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
}
