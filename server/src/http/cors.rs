//! Cross-origin requests from browser clients.
//!
//! OpenWrt's firmware selector (a static site on another host) and luci-app-attendedsysupgrade
//! (running in the router's own web page) call the build API from JavaScript in another origin.
//! Without `Access-Control-Allow-Origin` the browser hides every answer from them, and without a
//! preflight answer it never sends the `POST` (nor a status poll, since those carry
//! `Content-Type: application/json`). So every answer carries the allowed origin — redirects,
//! errors and 404s too, or the page cannot even show the error — and `OPTIONS` preflights are
//! answered on every path.
//!
//! Only `content-type` is an allowed request header: the admin API's `Authorization` bearer token
//! cannot be sent cross-origin, so a web page can never drive it with an operator's token.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::REQUEST_ID_HEADER;
use crate::config::{InvalidOrigin, check_origin};

/// How long a browser may cache a preflight answer: polls then cost one request, not two.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// The CORS layer for `origins` (`*` allows any origin; an empty list sends no CORS headers).
pub fn layer(origins: &[String]) -> Result<Option<CorsLayer>, InvalidOrigin> {
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        let mut values = Vec::with_capacity(origins.len());
        for origin in origins {
            check_origin(origin)?;
            values.push(HeaderValue::from_str(origin).map_err(|_| InvalidOrigin {
                origin: origin.clone(),
            })?);
        }
        AllowOrigin::list(values)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::OPTIONS])
            .allow_headers([header::CONTENT_TYPE])
            .expose_headers([HeaderName::from_static(REQUEST_ID_HEADER)])
            .max_age(PREFLIGHT_MAX_AGE),
    ))
}
