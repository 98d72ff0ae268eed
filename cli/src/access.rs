//! Who may read the web view: anyone who reaches a loopback address, and
//! beyond loopback only a client that shows the token.
//!
//! The view shows every payload in the store (inputs, outputs, states,
//! errors), so an address other people can reach needs a secret. A browser
//! signs in once with `/?token=TOKEN` (answered with a redirect to the page
//! without it and an `HttpOnly`, `SameSite=Strict` cookie), or with HTTP
//! Basic authentication (any user name, the token as the password: the
//! browser asks); a script sends `Authorization: Bearer TOKEN`. A request
//! without it gets `401` and a page that says how to sign in, and nothing of
//! the store.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use subtle::ConstantTimeEq as _;

/// The shortest token the tool accepts: a guessable secret protects nothing.
pub const MIN_TOKEN_LEN: usize = 16;

/// Why a web view may not be served as asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// The address is reachable from other machines and no token was given.
    #[error(
        "serving on {address} shows every payload in the store to whoever reaches that address; \
         give a token (`--token`, or SAGAFLOW_UI_TOKEN; e.g. `openssl rand -hex 16`), \
         or listen on 127.0.0.1"
    )]
    TokenRequired {
        /// The address asked for.
        address: SocketAddr,
    },
    /// The token is too short to be a secret.
    #[error(
        "the web view's token has {length} characters; give one of at least {MIN_TOKEN_LEN} \
         (e.g. `openssl rand -hex 16`)"
    )]
    WeakToken {
        /// How many characters it has.
        length: usize,
    },
}

/// Checks that a web view may be served on `address` with `token`: beyond
/// loopback a token is required, and any token given must be at least
/// [`MIN_TOKEN_LEN`] characters.
pub fn check(address: SocketAddr, token: Option<&str>) -> Result<(), AccessError> {
    match token {
        Some(token) if token.chars().count() < MIN_TOKEN_LEN => Err(AccessError::WeakToken {
            length: token.chars().count(),
        }),
        Some(_) => Ok(()),
        None if address.ip().is_loopback() => Ok(()),
        None => Err(AccessError::TokenRequired { address }),
    }
}

/// The middleware that lets a request through only with the token.
pub(crate) async fn require_token(
    State(token): State<Arc<str>>,
    request: Request,
    next: Next,
) -> Response {
    if presents(request.headers(), &token) {
        return next.run(request).await;
    }
    if let Some(rest) = signs_in(request.uri().query(), &token) {
        let path = request.uri().path();
        let location = if rest.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{rest}")
        };
        // The token is in neither the address bar nor the history from here on.
        let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
        if let (Ok(location), Ok(cookie)) = (
            HeaderValue::from_str(&location),
            HeaderValue::from_str(&cookie),
        ) {
            return (
                StatusCode::SEE_OTHER,
                [(header::LOCATION, location), (header::SET_COOKIE, cookie)],
            )
                .into_response();
        }
    }
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            r#"Basic realm="sagaflow", charset="UTF-8""#,
        )],
        Html(SIGN_IN),
    )
        .into_response()
}

const SIGN_IN: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>sagaflow: sign in</title></head>\
<body><h1>This sagaflow view needs its token</h1>\
<p>Open <code>/?token=TOKEN</code> once, or sign in with any user name and the token as the \
password; scripts send <code>Authorization: Bearer TOKEN</code>.</p></body></html>";

/// The cookie a browser that signed in with `?token=` carries.
const COOKIE: &str = "sagaflow_token";

/// The rest of `query` when it carries `token=TOKEN` with the right token.
fn signs_in(query: Option<&str>, token: &str) -> Option<String> {
    let query = query?;
    let mut signed_in = false;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("token=") {
            Some(given) => {
                signed_in |= same(given.as_bytes(), token.as_bytes());
                false
            }
            None => true,
        })
        .collect();
    signed_in.then(|| rest.join("&"))
}

/// Whether `headers` carry `token`, as the sign-in cookie, Basic
/// credentials (any user) or a Bearer token, compared in constant time.
fn presents(headers: &HeaderMap, token: &str) -> bool {
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .any(|given| same(given.as_bytes(), token.as_bytes()));
    if cookie {
        return true;
    }
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value, ""));
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return same(credentials.as_bytes(), token.as_bytes());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credentials) else {
            return false;
        };
        let password = match decoded.iter().position(|&byte| byte == b':') {
            Some(colon) => &decoded[colon + 1..],
            None => return false,
        };
        return same(password, token.as_bytes());
    }
    false
}

fn same(given: &[u8], token: &[u8]) -> bool {
    given.ct_eq(token).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const TOKEN: &str = "0123456789abcdef";

    fn with(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(authorization).unwrap(),
        );
        headers
    }

    fn basic(user_and_password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_and_password)
        )
    }

    #[test]
    fn the_token_is_accepted_as_a_bearer_or_a_basic_password() {
        assert!(presents(&with(&format!("Bearer {TOKEN}")), TOKEN));
        assert!(presents(&with(&format!("bearer  {TOKEN} ")), TOKEN));
        assert!(presents(&with(&basic(&format!("ops:{TOKEN}"))), TOKEN));
        assert!(presents(&with(&basic(&format!(":{TOKEN}"))), TOKEN));
    }

    #[test]
    fn the_sign_in_cookie_and_query_carry_the_token() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("theme=dark; sagaflow_token={TOKEN}")).unwrap(),
        );
        assert!(presents(&headers, TOKEN));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("sagaflow_token=0123456789abcdeX"),
        );
        assert!(!presents(&headers, TOKEN));
        assert_eq!(
            signs_in(Some(&format!("token={TOKEN}")), TOKEN).as_deref(),
            Some("")
        );
        assert_eq!(
            signs_in(Some(&format!("id=order-1&token={TOKEN}")), TOKEN).as_deref(),
            Some("id=order-1")
        );
        assert_eq!(signs_in(Some("token=0123456789abcdeX"), TOKEN), None);
        assert_eq!(signs_in(Some("id=order-1"), TOKEN), None);
        assert_eq!(signs_in(None, TOKEN), None);
    }

    #[test]
    fn anything_else_is_refused() {
        assert!(!presents(&HeaderMap::new(), TOKEN));
        assert!(!presents(&with("Bearer 0123456789abcdeX"), TOKEN));
        assert!(!presents(&with("Bearer 0123456789abcde"), TOKEN));
        assert!(!presents(&with("Bearer "), TOKEN));
        assert!(
            !presents(&with(&basic(TOKEN)), TOKEN),
            "no colon: no password"
        );
        assert!(
            !presents(&with(&basic(&format!("{TOKEN}:x"))), TOKEN),
            "the token as user"
        );
        assert!(!presents(&with("Basic not-base64!"), TOKEN));
        assert!(!presents(&with(&format!("Token {TOKEN}")), TOKEN));
    }

    #[test]
    fn beyond_loopback_a_token_of_sixteen_characters_is_required() {
        let loopback: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let v6_loopback: SocketAddr = "[::1]:8080".parse().unwrap();
        let everywhere: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert!(check(loopback, None).is_ok());
        assert!(check(v6_loopback, None).is_ok());
        assert!(check(everywhere, Some(TOKEN)).is_ok());
        let error = check(everywhere, None).unwrap_err().to_string();
        assert!(
            error.contains("give a token (`--token`, or SAGAFLOW_UI_TOKEN"),
            "{error}"
        );
        let error = check(loopback, Some("short")).unwrap_err().to_string();
        assert!(error.contains("has 5 characters"), "{error}");
    }
}
