//! Posted forms. `Posted` refuses a body whose `_csrf` field is not the session's token, and
//! any POST whose `Origin` is another site, before a handler sees it.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::header,
};

use crate::{App, session::Session, web::Fail};

/// The fields of a form (repeated names kept in order).
#[derive(Clone, Debug, Default)]
pub struct Posted {
    pub fields: Vec<(String, String)>,
}

impl Posted {
    /// A field's value, trimmed; empty when absent.
    pub fn get(&self, name: &str) -> String {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_owned()).unwrap_or_default()
    }

    /// Every value of a field, trimmed, empty ones left out.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }

    /// Whether a checkbox is ticked.
    pub fn checked(&self, name: &str) -> bool {
        self.fields.iter().any(|(k, v)| k == name && !v.is_empty())
    }
}

/// Whether the request's `Origin` (when the browser sends one) is the console itself.
pub fn same_origin(headers: &axum::http::HeaderMap, app: &App) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    if origin == "null" {
        return false;
    }
    if let Some(public) = &app.config.public_url {
        return public.trim_end_matches('/') == origin;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) == Some(host)
}

impl FromRequest<App> for Posted {
    type Rejection = Fail;

    async fn from_request(req: Request, app: &App) -> Result<Posted, Fail> {
        let (parts, body) = req.into_parts();
        if !same_origin(&parts.headers, app) {
            return Err(Fail::Forged);
        }
        let expected = match parts.extensions.get::<Session>() {
            Some(s) => s.csrf.clone(),
            None => return Err(Fail::SignIn("/".into())),
        };
        let bytes = Bytes::from_request(Request::from_parts(parts, body), app)
            .await
            .map_err(|e| Fail::Bad(format!("the form could not be read: {e}")))?;
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| Fail::Bad(format!("the form could not be read: {e}")))?;
        let sent = fields.iter().find(|(k, _)| k == "_csrf").map(|(_, v)| v.as_str()).unwrap_or_default();
        if sent.is_empty() || !crate::session::same(sent, &expected) {
            return Err(Fail::Forged);
        }
        Ok(Posted { fields })
    }
}
