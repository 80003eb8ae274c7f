//! The web UI's files, embedded in the binary (no CDN, no file read at run time): `/`
//! (the page), `/ui/app.js`, `/ui/app.css`. Plain HTML, CSS and JavaScript written for
//! Agora; the page reads the JSON API and `/api/v1/events` like any other client, so it
//! needs no server-side logic and sees exactly what the caller's credentials and the
//! view ACLs allow. An unknown `/ui/...` path is a JSON 404.
//!
//! Owns the assets only; it must never answer with anything but these files.

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::service::{Error, quote};

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// Scripts, styles and connections only from the master itself.
const CSP: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Assets change with the binary: always revalidate.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// `GET /` and `GET /ui/`.
pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /ui/{*path}`.
pub async fn file(Path(path): Path<String>) -> Result<Response, Error> {
    match path.as_str() {
        "" | "index.html" => Ok(index().await),
        "app.js" => Ok(asset("text/javascript; charset=utf-8", APP_JS)),
        "app.css" => Ok(asset("text/css; charset=utf-8", APP_CSS)),
        other => Err(Error::not_found(format!("no UI file '{}'", quote(other)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn known_files_are_served_and_others_are_404() {
        let r = file(Path("app.js".into())).await.expect("served");
        assert_eq!(
            r.headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("text/javascript; charset=utf-8")
        );
        assert!(matches!(
            file(Path("../secret".into())).await,
            Err(Error::NotFound(_))
        ));
        // The page names only its own assets: nothing from another host.
        for text in [INDEX_HTML, APP_JS, APP_CSS] {
            assert!(!text.contains("http://") && !text.contains("https://"));
        }
        assert!(INDEX_HTML.contains("/ui/app.js") && INDEX_HTML.contains("/ui/app.css"));
    }
}
