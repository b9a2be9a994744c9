//! How the gateway authenticates itself to a provider: a fixed header, or the
//! provider's own OAuth 2.0 client-credentials token, fetched once for all
//! concurrent requests and cached until shortly before it expires. At the
//! token endpoint the gateway authenticates with a client secret (HTTP
//! Basic or in the form) or with a signed assertion (`private_key_jwt`).

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::Full;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::assertion::{ASSERTION_TYPE, AssertionKey};
use super::tls::HttpClient;
use super::{USER_AGENT_VALUE, UpstreamError, parse_url, send};

/// How the gateway proves itself to a provider.
#[derive(Clone, PartialEq, Eq)]
pub enum UpstreamAuth {
    /// A fixed header (e.g. an API key) sent on every request.
    Header { name: HeaderName, value: HeaderValue },
    /// The provider's own OAuth 2.0 client-credentials token, fetched by the host and cached until shortly before expiry.
    ClientCredentials { token_url: String, client_id: String, scope: Option<String>, client_auth: ClientAuth },
}

/// How the gateway authenticates at a provider's token endpoint (the
/// `token_endpoint_auth_method` names of RFC 7591).
#[derive(Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic`: the secret in an HTTP Basic header.
    SecretBasic(String),
    /// `client_secret_post`: `client_id` and `client_secret` in the form.
    SecretPost(String),
    /// `private_key_jwt`: a signed assertion (SMART Backend Services).
    PrivateKeyJwt(AssertionKey),
}

impl ClientAuth {
    /// The RFC 7591 name.
    pub fn method(&self) -> &'static str {
        match self {
            ClientAuth::SecretBasic(_) => "client_secret_basic",
            ClientAuth::SecretPost(_) => "client_secret_post",
            ClientAuth::PrivateKeyJwt(_) => "private_key_jwt",
        }
    }
}

impl fmt::Debug for UpstreamAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamAuth::Header { name, .. } => {
                f.debug_struct("Header").field("name", name).field("value", &"<redacted>").finish()
            }
            UpstreamAuth::ClientCredentials { token_url, client_id, scope, client_auth } => f
                .debug_struct("ClientCredentials")
                .field("token_url", token_url)
                .field("client_id", client_id)
                .field("scope", scope)
                .field("client_auth", &client_auth.method())
                .finish(),
        }
    }
}

/// The client-credentials fields of [`UpstreamAuth`], borrowed.
#[derive(Clone, Copy)]
pub(super) struct Credentials<'a> {
    pub token_url: &'a str,
    pub client_id: &'a str,
    pub scope: Option<&'a str>,
    pub client_auth: &'a ClientAuth,
}

/// RFC 6749 §4.4 leaves `expires_in` optional; a token whose lifetime is not
/// stated is kept five minutes, short enough that a revoked one is not used
/// for long and long enough that the endpoint sees one request per provider
/// every few minutes.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// A token is replaced this long before it expires (or at 90% of its life if
/// that is sooner), so that clock skew and the time a request spends in
/// flight do not make the provider see an expired token.
const REFRESH_MARGIN: Duration = Duration::from_secs(30);

/// A token response is a few hundred bytes; 64 KiB leaves room for large
/// JWTs while bounding what a misbehaving endpoint can make the gateway hold.
const TOKEN_RESPONSE_LIMIT: usize = 64 * 1024;

/// One provider's token, shared by all its requests.
pub(super) struct TokenCache {
    /// Held across a fetch, so that concurrent requests wait for that one
    /// fetch instead of each starting their own.
    slot: Mutex<Option<Cached>>,
}

struct Cached {
    /// The whole `Authorization` value, marked sensitive.
    bearer: HeaderValue,
    refresh_at: Instant,
}

impl TokenCache {
    pub(super) fn new() -> Self {
        TokenCache { slot: Mutex::new(None) }
    }

    /// The `Authorization` value to send: the cached token while it is
    /// fresh, otherwise a new one from the token endpoint.
    pub(super) async fn bearer(
        &self,
        client: &HttpClient,
        provider: &str,
        credentials: Credentials<'_>,
    ) -> Result<HeaderValue, UpstreamError> {
        let mut slot = self.slot.lock().await;
        if let Some(cached) = slot.as_ref().filter(|c| Instant::now() < c.refresh_at) {
            return Ok(cached.bearer.clone());
        }
        *slot = None;
        let fresh = fetch(client, credentials).await?;
        tracing::debug!(provider, "fetched the provider's access token");
        let bearer = fresh.bearer.clone();
        *slot = Some(fresh);
        Ok(bearer)
    }

    /// Forgets `rejected` after the provider refused it. A token fetched
    /// meanwhile by another request is kept.
    pub(super) async fn invalidate(&self, rejected: &HeaderValue) {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_some_and(|c| c.bearer == *rejected) {
            *slot = None;
        }
    }
}

/// The client-credentials grant, the client authenticated as configured.
async fn fetch(client: &HttpClient, c: Credentials<'_>) -> Result<Cached, UpstreamError> {
    let uri = parse_url(c.token_url).map_err(|_| UpstreamError::Auth("the token URL is invalid".into()))?;
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "application/json")
        .header(USER_AGENT, USER_AGENT_VALUE);
    if let ClientAuth::SecretBasic(secret) = c.client_auth {
        request = request.header(AUTHORIZATION, basic_auth(c.client_id, secret));
    }
    let form = grant_form(c, fhirgate_core::clock::now_seconds())?;
    let request = request
        .body(Full::new(Bytes::from(form)))
        .map_err(|_| UpstreamError::Auth("the token URL is invalid".into()))?;
    // The lifetime counts from before the request, so transit time eats
    // into the margin rather than past the expiry.
    let issued = Instant::now();
    let answer = send(client, request, TOKEN_RESPONSE_LIMIT)
        .await
        .map_err(|e| UpstreamError::Auth(format!("the token endpoint failed: {e}")))?;
    let (bearer, lifetime) = parse_token_response(answer.status, &answer.body)?;
    // A day at most: a provider answering an absurd `expires_in` must not
    // overflow the clock, and a token re-fetched daily costs nothing.
    let lifetime = lifetime.min(MAX_TOKEN_LIFETIME);
    let margin = REFRESH_MARGIN.min(lifetime / 10);
    let refresh_at = issued.checked_add(lifetime.saturating_sub(margin)).unwrap_or(issued);
    Ok(Cached { bearer, refresh_at })
}

/// The longest an upstream token is cached, whatever its `expires_in`.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(86_400);

/// The request body of RFC 6749 §4.4.2, with the client's credentials
/// where its method puts them in the form (RFC 6749 §2.3.1, RFC 7523 §2.2).
fn grant_form(c: Credentials<'_>, now: u64) -> Result<String, UpstreamError> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials");
    if let Some(scope) = c.scope {
        form.append_pair("scope", scope);
    }
    match c.client_auth {
        ClientAuth::SecretBasic(_) => {}
        ClientAuth::SecretPost(secret) => {
            form.append_pair("client_id", c.client_id);
            form.append_pair("client_secret", secret);
        }
        ClientAuth::PrivateKeyJwt(key) => {
            let assertion = key
                .assertion(c.client_id, c.token_url, now)
                .map_err(|e| UpstreamError::Auth(format!("the client assertion: {e}")))?;
            form.append_pair("client_assertion_type", ASSERTION_TYPE);
            form.append_pair("client_assertion", &assertion);
        }
    }
    Ok(form.finish())
}

/// RFC 6749 §2.3.1: id and secret are form-urlencoded before they are joined
/// and base64-encoded, so a `:` in the id cannot shift the split.
pub(super) fn basic_auth(client_id: &str, client_secret: &str) -> HeaderValue {
    let id: String = form_urlencoded::byte_serialize(client_id.as_bytes()).collect();
    let secret: String = form_urlencoded::byte_serialize(client_secret.as_bytes()).collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    let mut value = HeaderValue::try_from(format!("Basic {encoded}")).expect("base64 is a valid header value");
    value.set_sensitive(true);
    value
}

/// The bearer `Authorization` value and the token's lifetime, or an error
/// that names the OAuth error code (never the token or the secret).
fn parse_token_response(status: StatusCode, body: &[u8]) -> Result<(HeaderValue, Duration), UpstreamError> {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| json.as_ref().and_then(|j| j.get(name));
    if !status.is_success() {
        let code = field("error").and_then(|v| v.as_str()).filter(|c| is_error_code(c));
        return Err(UpstreamError::Auth(match code {
            Some(code) => format!("the token endpoint answered {status} with `{code}`"),
            None => format!("the token endpoint answered {status}"),
        }));
    }
    let not_a_token = || UpstreamError::Auth("the token endpoint's answer is not a token response".into());
    let token = field("access_token").and_then(|v| v.as_str()).filter(|t| !t.is_empty()).ok_or_else(not_a_token)?;
    let token_type = field("token_type").and_then(|v| v.as_str()).ok_or_else(not_a_token)?;
    if !token_type.eq_ignore_ascii_case("bearer") {
        let shown = if is_error_code(token_type) { token_type } else { "unknown" };
        return Err(UpstreamError::Auth(format!("the token endpoint issued a `{shown}` token, not a bearer token")));
    }
    let lifetime = match field("expires_in") {
        None | Some(serde_json::Value::Null) => DEFAULT_LIFETIME,
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .map(Duration::from_secs)
            .ok_or_else(|| {
                UpstreamError::Auth("the token endpoint's `expires_in` is not a number of seconds".into())
            })?,
    };
    let mut bearer = HeaderValue::try_from(format!("Bearer {token}"))
        .map_err(|_| UpstreamError::Auth("the token endpoint issued a token that cannot be sent in a header".into()))?;
    bearer.set_sensitive(true);
    Ok((bearer, lifetime))
}

/// RFC 6749 §5.2 error codes are short printable ASCII without `"` or `\`;
/// anything else is not repeated in messages or logs.
fn is_error_code(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5b | 0x5d..=0x7e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_form_encodes_id_and_secret_first() {
        let value = basic_auth("app:1", "s&cr t");
        let encoded = value.to_str().unwrap().strip_prefix("Basic ").unwrap();
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
        assert_eq!(decoded, b"app%3A1:s%26cr+t");
        assert!(value.is_sensitive());
    }

    #[test]
    fn each_method_puts_the_credentials_where_it_should() {
        let form = |auth: &ClientAuth| {
            let c = Credentials {
                token_url: "https://ehr/t",
                client_id: "app 1",
                scope: Some("system/*.read"),
                client_auth: auth,
            };
            let text = grant_form(c, 1_000).unwrap();
            form_urlencoded::parse(text.as_bytes()).into_owned().collect::<std::collections::BTreeMap<String, String>>()
        };
        let basic = form(&ClientAuth::SecretBasic("s".into()));
        assert_eq!(basic.keys().collect::<Vec<_>>(), ["grant_type", "scope"]);
        let post = form(&ClientAuth::SecretPost("s&t".into()));
        assert_eq!((post["client_id"].as_str(), post["client_secret"].as_str()), ("app 1", "s&t"));
        let key = AssertionKey::generate().unwrap().key;
        let jwt = form(&ClientAuth::PrivateKeyJwt(key));
        assert_eq!(jwt["client_assertion_type"], ASSERTION_TYPE);
        assert_eq!(jwt["client_assertion"].split('.').count(), 3);
        assert!(!jwt.contains_key("client_secret"));
        assert_eq!(format!("{:?}", ClientAuth::SecretPost("hunter2".into()).method()), "\"client_secret_post\"");
    }

    #[test]
    fn token_responses_are_read_strictly() {
        let ok = |body: &str| parse_token_response(StatusCode::OK, body.as_bytes());
        let (bearer, lifetime) = ok(r#"{"access_token":"abc","token_type":"BEARER","expires_in":"60"}"#).unwrap();
        assert_eq!(bearer, "Bearer abc");
        assert_eq!(lifetime, Duration::from_secs(60));
        let (_, lifetime) = ok(r#"{"access_token":"abc","token_type":"bearer"}"#).unwrap();
        assert_eq!(lifetime, DEFAULT_LIFETIME);
        for bad in [
            r#"{"access_token":"abc","token_type":"mac"}"#,
            r#"{"access_token":"abc"}"#,
            r#"{"token_type":"bearer"}"#,
            r#"{"access_token":"a\nb","token_type":"bearer"}"#,
            r#"{"access_token":"abc","token_type":"bearer","expires_in":"soon"}"#,
            "not json",
        ] {
            assert!(matches!(ok(bad), Err(UpstreamError::Auth(_))), "{bad}");
        }
    }

    #[test]
    fn a_refusal_names_the_oauth_error_code_only() {
        let body = br#"{"error":"invalid_client","error_description":"secret hunter2 is wrong"}"#;
        let Err(UpstreamError::Auth(msg)) = parse_token_response(StatusCode::UNAUTHORIZED, body) else {
            panic!("expected an auth error")
        };
        assert!(msg.contains("invalid_client"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        let Err(UpstreamError::Auth(msg)) = parse_token_response(StatusCode::BAD_REQUEST, br#"{"error":"a\"b"}"#)
        else {
            panic!("expected an auth error")
        };
        assert!(!msg.contains("a\"b"), "{msg}");
    }
}
