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
}
