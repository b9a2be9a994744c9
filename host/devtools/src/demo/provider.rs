//! The demo provider: a FHIR server speaking R4, STU3 or DSTU2 over the
//! synthetic patients and their clinical data (`resources`), with reads of
//! every type it serves and the searches a server of that release offers
//! (`search`). It is strict: an unknown search parameter is a 400
//! OperationOutcome, so nothing the gateway sends is silently ignored. It can
//! leave resource types out, to test what checks a provider's capabilities.
//! For end-to-end tests and benchmarks it can also serve more patients,
//! answer slowly, record each request it sees, and require bearer tokens from
//! its own client-credentials token endpoint.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use super::client_auth::{ASSERTION_TYPE, ClientCheck, Presented, SecretMethod};
use super::data;
use super::resources::{Dataset, Kind};
use super::search;
use fhirgate_core::failure::{Body, json_response, no_store};
use fhirgate_core::fhir::Version;
use fhirgate_core::fhir::outcome;
use fhirgate_gateway::oauth::bearer_token;

/// The token endpoint, outside the FHIR base like a real authorization server.
pub const TOKEN_PATH: &str = "/oauth2/token";
/// Largest request body read, form or search.
const MAX_BODY: usize = 64 * 1024;

/// How the provider behaves beyond serving the default patients.
#[derive(Clone)]
pub struct ProviderOptions {
    /// Patients served; the first [`data::PATIENT_COUNT`] are always the same.
    pub patients: usize,
    /// Added before every answer except `/metadata`, to give benchmarks a
    /// provider with a known latency.
    pub delay: Duration,
    /// A file that gets one JSON line per request (appended, flushed before
    /// the answer), so tests can see what reached this provider.
    pub request_log: Option<PathBuf>,
    /// `(client_id, client_secret)`: when set, the provider runs its own token
    /// endpoint and every FHIR interaction but `/metadata` needs its tokens.
    pub client_credentials: Option<(String, String)>,
    /// With `client_credentials`: the one way the secret is accepted
    /// (`None`: HTTP Basic or in the form).
    pub token_auth_method: Option<SecretMethod>,
    /// `(client_id, jwks_url)`: the provider's token endpoint authenticates
    /// its client with `private_key_jwt` assertions verified against the JWK
    /// Set at `jwks_url` (SMART Backend Services), and nothing else.
    pub private_key_jwt: Option<(String, String)>,
    /// Lifetime of the tokens issued.
    pub token_lifetime: Duration,
    /// The FHIR release spoken: resource shapes, search syntax, `/metadata`
    /// and media type.
    pub fhir_version: Version,
    /// Resource types not served: absent from `/metadata`, and a 404 for
    /// every interaction, as on a server that lacks them.
    pub without: Vec<String>,
    /// Search parameters accepted but not applied (with any modifier), as
    /// on servers that silently skip what they do not support: a provider
    /// to test `check-provider` against.
    pub ignore: Vec<String>,
    /// Served over HTTPS with this certificate; with a client CA, only to
    /// clients presenting a certificate it issued (as hospitals that
    /// require mutual TLS do).
    pub tls: Option<fhirgate_http::tls::TlsFiles>,
}

impl Default for ProviderOptions {
    fn default() -> Self {
        Self {
            patients: data::PATIENT_COUNT,
            delay: Duration::ZERO,
            request_log: None,
            client_credentials: None,
            token_auth_method: None,
            private_key_jwt: None,
            // Five minutes: short, as providers' client-credentials tokens are.
            token_lifetime: Duration::from_secs(300),
            fhir_version: Version::R4,
            without: Vec::new(),
            ignore: Vec::new(),
            tls: None,
        }
    }
}

impl ProviderOptions {
    /// The resource types served: those of the release but `without`.
    /// Naming a type the release does not define is an error, so a typo
    /// cannot leave everything served.
    pub fn served(&self) -> Result<Vec<Kind>, String> {
        let v = self.fhir_version;
        for name in &self.without {
            if Kind::named(v, name).is_none() {
                let known: Vec<&str> = Kind::of_release(v).map(Kind::name).collect();
                return Err(format!(
                    "`{name}` is not a resource type this provider serves in FHIR {}; expected one of {}",
                    v.number(),
                    known.join(", ")
                ));
            }
        }
        Ok(Kind::of_release(v).filter(|k| !self.without.iter().any(|w| w == k.name())).collect())
    }
}

/// Parses `r4`, `stu3` or `dstu2` (as given to `--fhir-version`).
pub fn parse_fhir_version(s: &str) -> Result<Version, String> {
    match s.to_ascii_lowercase().as_str() {
        "r4" => Ok(Version::R4),
        "stu3" => Ok(Version::Stu3),
        "dstu2" => Ok(Version::Dstu2),
        _ => Err("expected r4, stu3 or dstu2".to_owned()),
    }
}

/// Parses `ID:SECRET` (as given to `--client-credentials`); the secret may
/// itself contain `:`.
pub fn parse_client_credentials(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((id, secret)) if !id.is_empty() && !secret.is_empty() => Ok((id.to_owned(), secret.to_owned())),
        _ => Err("expected CLIENT_ID:CLIENT_SECRET, both non-empty".to_owned()),
    }
}

struct Provider {
    base: String,
    data: Dataset,
    served: Vec<Kind>,
    delay: Duration,
    log: Option<Mutex<File>>,
    issuer: Option<Issuer>,
    ignore: Vec<String>,
}

/// The provider's own authorization server: one client, opaque random tokens
/// kept in memory.
struct Issuer {
    client_id: String,
    check: ClientCheck,
    lifetime: Duration,
    issued: Mutex<Issued>,
}

#[derive(Default)]
struct Issued {
    /// SHA-256 of each live token → when it expires; the tokens themselves
    /// are not kept.
    live: HashMap<[u8; 32], Instant>,
    /// Tokens issued since start.
    count: u64,
}

/// What the `Authorization` header of a request is, as the request log
/// records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthSeen {
    /// No `Authorization` header.
    None,
    /// A bearer token this provider issued and that has not expired.
    Valid,
    /// Any other bearer token.
    Invalid,
    /// Another scheme (Basic on the token endpoint), or an unreadable value.
    Other,
}

impl AuthSeen {
    fn as_str(self) -> &'static str {
        match self {
            AuthSeen::None => "none",
            AuthSeen::Valid => "valid",
            AuthSeen::Invalid => "invalid",
            AuthSeen::Other => "other",
        }
    }
}

impl Provider {
    fn new(base: String, options: ProviderOptions) -> io::Result<Self> {
        let log = match &options.request_log {
            Some(path) => Some(Mutex::new(OpenOptions::new().create(true).append(true).open(path)?)),
            None => None,
        };
        let served = options.served().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let data = Dataset::new(options.fhir_version, options.patients);
        let token_url = format!("{}{TOKEN_PATH}", base.strip_suffix("/fhir").unwrap_or(&base));
        let client = match (options.client_credentials, options.private_key_jwt) {
            (Some(_), Some(_)) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a client secret or private_key_jwt, not both",
                ));
            }
            (Some((id, secret)), None) => Some((id, ClientCheck::secret(&secret, options.token_auth_method))),
            (None, Some((id, jwks_url))) => Some((id, ClientCheck::jwt(jwks_url, token_url))),
            (None, None) => None,
        };
        let issuer = client.map(|(client_id, check)| Issuer {
            client_id,
            check,
            lifetime: options.token_lifetime,
            issued: Mutex::default(),
        });
        Ok(Self { base, data, served, delay: options.delay, log, issuer, ignore: options.ignore })
    }

    fn auth_seen(&self, headers: &HeaderMap) -> AuthSeen {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return AuthSeen::None;
        };
        match bearer_token(value) {
            Some(token) if self.issuer.as_ref().is_some_and(|i| i.is_live(token)) => AuthSeen::Valid,
            Some(_) => AuthSeen::Invalid,
            None => AuthSeen::Other,
        }
    }

    async fn delay(&self) {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
    }

    /// Appends one line to the request log. A failed write is reported and
    /// the request still answered: the log is for tests, the answer is not.
    fn record(&self, line: &Value) {
        let Some(log) = &self.log else { return };
        let mut text = line.to_string();
        text.push('\n');
        let mut file = log.lock().unwrap_or_else(|e| e.into_inner());
        // One write per line: with O_APPEND, lines of concurrent requests (or
        // of a restarted provider on the same file) never interleave.
        if let Err(e) = file.write_all(text.as_bytes()).and_then(|()| file.flush()) {
            tracing::warn!(error = %e, "writing the request log failed");
        }
    }
}

impl Issuer {
    fn is_live(&self, token: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        issued.live.get(&digest).is_some_and(|expires| Instant::now() < *expires)
    }

    /// A new token; also forgets expired ones.
    fn issue(&self) -> String {
        let token = fhirgate_core::secret::generate_secret();
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        let mut issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        issued.live.retain(|_, expires| now < *expires);
        issued.live.insert(digest, now + self.lifetime);
        issued.count += 1;
        token
    }

    fn tokens_issued(&self) -> u64 {
        self.issued.lock().unwrap_or_else(|e| e.into_inner()).count
    }
}

/// Serves the provider on `listener` until the task is dropped; `base` is its
/// own absolute base URL (ending in `/fhir`), used in `fullUrl`s and links.
/// Fails only if the request log cannot be opened or `without` names a type
/// the release does not have.
pub async fn serve(listener: TcpListener, base: String, options: ProviderOptions) -> io::Result<()> {
    let tls = options.tls.as_ref().map(fhirgate_http::tls::Tls::new).transpose().map_err(io::Error::other)?;
    let provider = Arc::new(Provider::new(base, options)?);
    let handler = move |req, _peer| {
        let p = provider.clone();
        async move { handle(&p, req).await }
    };
    fhirgate_http::server::serve_connections(
        listener,
        &fhirgate_gateway::config::HttpLimits::default(),
        tls,
        handler,
        std::future::pending(),
    )
    .await;
    Ok(())
}

/// An OperationOutcome in the release's media type.
fn error(v: Version, status: StatusCode, code: &str, message: &str) -> Response<Body> {
    json_response(status, v.content_type(), outcome("error", code, message).to_string())
}

async fn handle(p: &Provider, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let method = req.method().clone();
    let auth = p.auth_seen(req.headers());
    let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let line = json!({
        "method": method.as_str(),
        "path": path,
        "query": query,
        "auth": auth.as_str(),
        "x_request_id": request_id,
    });
    let fhir_path = path.strip_prefix("/fhir").filter(|rest| rest.is_empty() || rest.starts_with('/'));
    let segments: Vec<&str> = fhir_path.unwrap_or("").trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let is_metadata = fhir_path.is_some() && segments == ["metadata"];

    if let (Some(issuer), TOKEN_PATH) = (&p.issuer, path.as_str()) {
        // Logged once answered, so the line can carry the count of tokens.
        p.delay().await;
        let (resp, method) = token_endpoint(issuer, req).await;
        let mut line = line;
        line["tokens_issued"] = json!(issuer.tokens_issued());
        line["client_auth"] = json!(method);
        p.record(&line);
        return resp;
    }
    // Logged on arrival: a request the client gives up on is still seen.
    p.record(&line);
    if !is_metadata {
        p.delay().await;
    }

    let v = p.data.version();
    if fhir_path.is_none() {
        return error(v, StatusCode::NOT_FOUND, "not-found", "Unknown path.");
    }
    if p.issuer.is_some() && !is_metadata && auth != AuthSeen::Valid {
        let mut resp = error(
            v,
            StatusCode::UNAUTHORIZED,
            "login",
            "A bearer token from this provider's token endpoint is required.",
        );
        resp.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"demo-provider\", error=\"invalid_token\""),
        );
        return resp;
    }
    let is_form = is_form(req.headers());
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(v, StatusCode::PAYLOAD_TOO_LARGE, "too-costly", "Body too large."),
    };
    if is_metadata {
        return if method == Method::GET {
            json_response(StatusCode::OK, v.content_type(), capability(p).to_string())
        } else {
            error(v, StatusCode::BAD_REQUEST, "not-supported", "Unsupported interaction.")
        };
    }
    let Some(&t) = segments.first() else {
        return error(v, StatusCode::BAD_REQUEST, "not-supported", "Unsupported interaction.");
    };
    let Some(kind) = p.served.iter().copied().find(|k| k.name() == t) else {
        return error(v, StatusCode::NOT_FOUND, "not-supported", &format!("This server does not serve {t}."));
    };
    match (&method, &segments[1..]) {
        (&Method::GET, [id]) => match p.data.read(kind, id) {
            Some(resource) => json_response(StatusCode::OK, v.content_type(), resource.to_string()),
            None => error(v, StatusCode::NOT_FOUND, "not-found", &format!("{t}/{id} is not known.")),
        },
        (&Method::GET, []) => search(p, kind, &query),
        (&Method::POST, ["_search"]) if is_form || body.is_empty() => {
            let mut q = query;
            if !body.is_empty() {
                if !q.is_empty() {
                    q.push('&');
                }
                q.push_str(&String::from_utf8_lossy(&body));
            }
            search(p, kind, &q)
        }
        _ => error(v, StatusCode::BAD_REQUEST, "not-supported", "Unsupported interaction."),
    }
}

fn search(p: &Provider, kind: Kind, query: &str) -> Response<Body> {
    let v = p.data.version();
    let applied;
    let query = if p.ignore.is_empty() {
        query
    } else {
        let mut kept = form_urlencoded::Serializer::new(String::new());
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let base = name.split(':').next().unwrap_or_default();
            if !p.ignore.iter().any(|i| i == base) {
                kept.append_pair(&name, &value);
            }
        }
        applied = kept.finish();
        &applied
    };
    match search::search(&p.data, &p.base, kind, query) {
        Ok(bundle) => json_response(StatusCode::OK, v.content_type(), bundle.to_string()),
        Err(refusal) => error(v, refusal.status, refusal.code, &refusal.message),
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"))
}

/// An RFC 6749 §5.2 error of the token endpoint.
enum TokenError {
    InvalidRequest(&'static str),
    InvalidClient,
    UnsupportedGrantType,
}

impl TokenError {
    fn response(&self) -> Response<Body> {
        let (status, code, description) = match self {
            TokenError::InvalidRequest(d) => (StatusCode::BAD_REQUEST, "invalid_request", *d),
            TokenError::InvalidClient => (StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed."),
            TokenError::UnsupportedGrantType => {
                (StatusCode::BAD_REQUEST, "unsupported_grant_type", "Only client_credentials is supported.")
            }
        };
        let body = json!({ "error": code, "error_description": description });
        let mut resp = no_store(json_response(status, "application/json", body.to_string()));
        if let TokenError::InvalidClient = self {
            resp.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"demo-provider\""));
        }
        resp
    }
}

/// `POST /oauth2/token` with `grant_type=client_credentials`, the client
/// authenticated as the provider is set up to (HTTP Basic, `client_id` and
/// `client_secret` in the body, or a `private_key_jwt` assertion); the
/// method that passed, for the request log.
async fn token_endpoint(issuer: &Issuer, req: Request<Incoming>) -> (Response<Body>, Option<&'static str>) {
    match issue_token(issuer, req).await {
        Ok((body, method)) => {
            (no_store(json_response(StatusCode::OK, "application/json", body.to_string())), Some(method))
        }
        Err(e) => (e.response(), None),
    }
}

/// The token response and the client authentication method that passed.
async fn issue_token(issuer: &Issuer, req: Request<Incoming>) -> Result<(Value, &'static str), TokenError> {
    if req.method() != Method::POST {
        return Err(TokenError::InvalidRequest("The token endpoint takes POST."));
    }
    if !is_form(req.headers()) {
        return Err(TokenError::InvalidRequest("The body must be application/x-www-form-urlencoded."));
    }
    let mut authorization = req.headers().get_all(AUTHORIZATION).iter();
    let header = authorization.next().cloned();
    if authorization.next().is_some() {
        return Err(TokenError::InvalidRequest("More than one Authorization header."));
    }
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| TokenError::InvalidRequest("The body is too large."))?
        .to_bytes();
    let mut params: HashMap<String, String> = HashMap::new();
    for (k, v) in form_urlencoded::parse(&body) {
        // RFC 6749 §3.2: parameters must not be repeated.
        if params.insert(k.into_owned(), v.into_owned()).is_some() {
            return Err(TokenError::InvalidRequest("A parameter is given more than once."));
        }
    }
    let presented = match header {
        Some(_) if params.contains_key("client_assertion") => {
            return Err(TokenError::InvalidRequest("Use HTTP Basic or a client assertion, not both."));
        }
        None if params.contains_key("client_assertion") => {
            if params.get("client_assertion_type").map(String::as_str) != Some(ASSERTION_TYPE) {
                return Err(TokenError::InvalidRequest("`client_assertion_type` must be the JWT bearer type."));
            }
            Presented::Assertion {
                client_id: params.get("client_id").cloned(),
                assertion: params.get("client_assertion").cloned().unwrap_or_default(),
            }
        }
        Some(value) => {
            let value = value.to_str().map_err(|_| TokenError::InvalidClient)?;
            let (scheme, encoded) = value.split_once(' ').ok_or(TokenError::InvalidClient)?;
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(TokenError::InvalidRequest("Authenticate the client with HTTP Basic or in the body."));
            }
            if params.contains_key("client_secret") {
                return Err(TokenError::InvalidRequest("Use HTTP Basic or client_secret in the body, not both."));
            }
            let decoded = STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or(TokenError::InvalidClient)?;
            let (id, secret) = decoded.split_once(':').ok_or(TokenError::InvalidClient)?;
            // RFC 6749 §2.3.1: both parts are form-urlencoded before Basic.
            Presented::Secret { method: SecretMethod::Basic, client_id: form_decode(id), secret: form_decode(secret) }
        }
        None => match (params.get("client_id"), params.get("client_secret")) {
            (Some(id), Some(secret)) => {
                Presented::Secret { method: SecretMethod::Post, client_id: id.clone(), secret: secret.clone() }
            }
            _ => return Err(TokenError::InvalidClient),
        },
    };
    let method = match issuer.check.authenticate(&issuer.client_id, presented).await {
        Ok(method) => method,
        Err(why) => {
            tracing::info!(why, "demo provider: client authentication failed");
            return Err(TokenError::InvalidClient);
        }
    };
    match params.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(_) => return Err(TokenError::UnsupportedGrantType),
        None => return Err(TokenError::InvalidRequest("`grant_type` is missing.")),
    }
    let token = issuer.issue();
    Ok((
        json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": issuer.lifetime.as_secs(),
        }),
        method,
    ))
}

/// Form-urldecodes one value; a raw `&` (a client that did not encode) is
/// kept as it is.
fn form_decode(s: &str) -> String {
    let s = s.replace('&', "%26");
    form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

/// The provider's CapabilityStatement (Conformance in DSTU2): its release,
/// the types it serves with their search parameters and, when it issues
/// tokens, where (SMART's `oauth-uris`).
fn capability(p: &Provider) -> Value {
    let v = p.data.version();
    let resources: Vec<Value> = p
        .served
        .iter()
        .map(|&kind| {
            let params: Vec<Value> =
                search::parameters(v, kind).into_iter().map(|(name, ty)| json!({ "name": name, "type": ty })).collect();
            json!({
                "type": kind.name(),
                "interaction": [{ "code": "read" }, { "code": "search-type" }],
                "searchParam": params,
            })
        })
        .collect();
    let mut rest = json!({ "mode": "server", "resource": resources });
    if p.issuer.is_some() {
        let root = p.base.strip_suffix("/fhir").unwrap_or(&p.base);
        rest["security"] = json!({
            "extension": [{
                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                "extension": [{ "url": "token", "valueUri": format!("{root}{TOKEN_PATH}") }]
            }],
            "description": "Bearer tokens from the client-credentials grant at the token URL."
        });
    }
    let release = v.face().to_ascii_uppercase();
    let mut statement = json!({
        "resourceType": if v == Version::Dstu2 { "Conformance" } else { "CapabilityStatement" },
        "status": "active",
        "date": "2026-01-01",
        "kind": "instance",
        "software": { "name": "fhirgate demo provider" },
        "implementation": { "description": format!("Synthetic {release} data"), "url": p.base },
        "fhirVersion": v.number(),
        "format": ["json"],
        "rest": [rest],
    });
    if v != Version::R4 {
        // Required before R4, which dropped it.
        statement["acceptUnknown"] = json!("no");
    }
    statement
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;

    use super::*;

    /// A provider served on a free port for one test; stopped when dropped.
    struct Served {
        addr: SocketAddr,
        base: String,
        task: tokio::task::JoinHandle<io::Result<()>>,
    }

    impl Drop for Served {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    async fn start(options: ProviderOptions) -> Served {
        start_at(SocketAddr::from(([127, 0, 0, 1], 0)), options).await
    }

    /// Binds as `fhirgate provider` does.
    async fn start_at(addr: SocketAddr, options: ProviderOptions) -> Served {
        let (listener, addr) = fhirgate_http::server::bind(addr).await.expect("binding the provider");
        let base = format!("http://{addr}/fhir");
        let task = tokio::spawn(serve(listener, base.clone(), options));
        Served { addr, base, task }
    }

    fn with_client(id: &str, secret: &str) -> ProviderOptions {
        ProviderOptions { client_credentials: Some((id.to_owned(), secret.to_owned())), ..Default::default() }
    }

    struct Answer {
        status: StatusCode,
        headers: HeaderMap,
        json: Value,
    }

    type HttpClient = Client<HttpConnector, Full<Bytes>>;

    fn client() -> HttpClient {
        Client::builder(TokioExecutor::new()).build_http()
    }

    async fn send(client: &HttpClient, method: Method, url: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        let mut req = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = client.request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap()).await.unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer { status: parts.status, headers: parts.headers, json }
    }

    async fn get(url: &str, headers: &[(&str, &str)]) -> Answer {
        send(&client(), Method::GET, url, headers, "").await
    }

    const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

    async fn token_request(p: &Served, headers: &[(&str, &str)], body: &str) -> Answer {
        let mut all = vec![FORM];
        all.extend_from_slice(headers);
        send(&client(), Method::POST, &format!("http://{}{TOKEN_PATH}", p.addr), &all, body).await
    }

    /// `Basic` credentials encoded as RFC 6749 §2.3.1 asks.
    fn basic(id: &str, secret: &str) -> String {
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        format!("Basic {}", STANDARD.encode(format!("{}:{}", enc(id), enc(secret))))
    }

    async fn token(p: &Served, id: &str, secret: &str) -> String {
        let a = token_request(p, &[], &format!("grant_type=client_credentials&client_id={id}&client_secret={secret}"))
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.json);
        a.json["access_token"].as_str().unwrap().to_owned()
    }

    fn header<'a>(a: &'a Answer, name: &str) -> &'a str {
        a.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    #[test]
    fn client_credentials_argument() {
        assert_eq!(parse_client_credentials("app:s3:cret"), Ok(("app".into(), "s3:cret".into())));
        assert!(parse_client_credentials("app").is_err());
        assert!(parse_client_credentials(":secret").is_err());
        assert!(parse_client_credentials("app:").is_err());
    }

    #[tokio::test]
    async fn token_endpoint_issues_tokens_and_refuses_bad_requests() {
        // A secret with the characters §2.3.1 encoding exists for.
        let secret = "s3cr:et&+/ x";
        let p = start(with_client("app", secret)).await;

        let a = token_request(&p, &[("authorization", &basic("app", secret))], "grant_type=client_credentials").await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.json);
        assert_eq!(a.json["token_type"], "Bearer");
        assert_eq!(a.json["expires_in"], 300);
        let first = a.json["access_token"].as_str().unwrap().to_owned();
        assert_eq!(first.len(), 43, "32 random bytes, base64url without padding");
        assert!(first.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(header(&a, "cache-control"), "no-store");

        let body = format!(
            "grant_type=client_credentials&client_id=app&client_secret={}",
            form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>()
        );
        let a = token_request(&p, &[], &body).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.json);
        assert_ne!(a.json["access_token"].as_str().unwrap(), first);

        for (headers, body) in [
            (vec![], "grant_type=client_credentials&client_id=app&client_secret=wrong".to_owned()),
            (vec![], "grant_type=client_credentials&client_id=other&client_secret=s3cr".to_owned()),
            (vec![], "grant_type=client_credentials".to_owned()),
            (vec![("authorization", basic("app", "wrong"))], "grant_type=client_credentials".to_owned()),
        ] {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let a = token_request(&p, &headers, &body).await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{body}");
            assert_eq!(a.json["error"], "invalid_client");
            assert_eq!(header(&a, "www-authenticate"), "Basic realm=\"demo-provider\"");
            assert_eq!(header(&a, "cache-control"), "no-store");
        }

        let auth = basic("app", secret);
        let a = token_request(&p, &[("authorization", &auth)], "grant_type=password").await;
        assert_eq!((a.status, a.json["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")));
        for body in [
            "",
            "grant_type=client_credentials&grant_type=client_credentials",
            "grant_type=client_credentials&client_secret=x",
        ] {
            let a = token_request(&p, &[("authorization", &auth)], body).await;
            assert_eq!(
                (a.status, a.json["error"].as_str()),
                (StatusCode::BAD_REQUEST, Some("invalid_request")),
                "{body}"
            );
        }
        let url = format!("http://{}{TOKEN_PATH}", p.addr);
        let a = send(&client(), Method::POST, &url, &[("content-type", "application/json")], "{}").await;
        assert_eq!((a.status, a.json["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));
        let a = get(&url, &[]).await;
        assert_eq!((a.status, a.json["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));
    }

    #[tokio::test]
    async fn fhir_interactions_need_an_issued_unexpired_token() {
        let p = start(with_client("app", "secret")).await;
        let read = format!("{}/Patient/pat-001", p.base);

        assert_eq!(get(&format!("{}/metadata", p.base), &[]).await.status, StatusCode::OK);
        for headers in
            [vec![], vec![("authorization", "Bearer made-up")], vec![("authorization", "Basic YXBwOnNlY3JldA==")]]
        {
            let a = get(&read, &headers).await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED);
            assert_eq!(header(&a, "www-authenticate"), "Bearer realm=\"demo-provider\", error=\"invalid_token\"");
            assert_eq!(a.json["resourceType"], "OperationOutcome");
        }

        let bearer = format!("Bearer {}", token(&p, "app", "secret").await);
        let a = get(&read, &[("authorization", &bearer)]).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.json["name"][0]["family"], "Chau");
        let a = get(&format!("{}/Patient?family=chau", p.base), &[("authorization", &bearer)]).await;
        assert_eq!((a.status, a.json["resourceType"].as_str()), (StatusCode::OK, Some("Bundle")));

        // A token whose lifetime is over is refused like an unknown one.
        let expired = start(ProviderOptions { token_lifetime: Duration::ZERO, ..with_client("app", "secret") }).await;
        let bearer = format!("Bearer {}", token(&expired, "app", "secret").await);
        let a = get(&format!("{}/Patient/pat-001", expired.base), &[("authorization", &bearer)]).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);

        // Without client credentials there is no token endpoint and no check.
        let open = start(ProviderOptions::default()).await;
        let a = token_request(&open, &[], "grant_type=client_credentials&client_id=app&client_secret=secret").await;
        assert_eq!(a.status, StatusCode::NOT_FOUND);
        assert_eq!(get(&format!("{}/Patient/pat-001", open.base), &[]).await.status, StatusCode::OK);
    }

    fn log_lines(path: &std::path::Path) -> Vec<Value> {
        std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    #[tokio::test]
    async fn request_log_says_what_was_received_without_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("requests.jsonl");
        let p = start(ProviderOptions { request_log: Some(log.clone()), ..with_client("app", "secret") }).await;

        get(&format!("{}/metadata", p.base), &[("x-request-id", "rid-1")]).await;
        let a = token_request(&p, &[("authorization", &basic("app", "secret"))], "grant_type=client_credentials").await;
        let issued = a.json["access_token"].as_str().unwrap().to_owned();
        let bearer = format!("Bearer {issued}");
        let url = format!("{}/Patient?family=chau&_count=5", p.base);
        assert_eq!(get(&url, &[("authorization", &bearer), ("x-request-id", "rid-2")]).await.status, StatusCode::OK);
        get(&url, &[("authorization", "Bearer someone-elses")]).await;
        get(&url, &[("authorization", "Basic YXBwOnNlY3JldA==")]).await;

        let lines = log_lines(&log);
        assert_eq!(lines.len(), 5, "{lines:?}");
        assert_eq!(
            lines[0],
            json!({ "method": "GET", "path": "/fhir/metadata", "query": "", "auth": "none", "x_request_id": "rid-1" })
        );
        assert_eq!(lines[1]["path"], TOKEN_PATH);
        assert_eq!(lines[1]["method"], "POST");
        assert_eq!(lines[1]["auth"], "other");
        assert_eq!(lines[1]["tokens_issued"], 1);
        assert_eq!(lines[1]["x_request_id"], Value::Null);
        assert_eq!(lines[2]["query"], "family=chau&_count=5");
        assert_eq!(lines[2]["auth"], "valid");
        assert_eq!(lines[2]["x_request_id"], "rid-2");
        assert_eq!(lines[3]["auth"], "invalid");
        assert_eq!(lines[4]["auth"], "other");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(!text.contains(&issued) && !text.contains("someone-elses") && !text.contains("YXBw"));

        // A provider that issues nothing sees every bearer token as invalid,
        // and appends to the same file.
        let open = start(ProviderOptions { request_log: Some(log.clone()), ..Default::default() }).await;
        get(&format!("{}/Patient/pat-002", open.base), &[("authorization", &bearer)]).await;
        let lines = log_lines(&log);
        assert_eq!(lines.len(), 6);
        assert_eq!(
            (lines[5]["path"].as_str(), lines[5]["auth"].as_str()),
            (Some("/fhir/Patient/pat-002"), Some("invalid"))
        );
    }

    #[tokio::test]
    async fn delay_applies_to_all_but_metadata() {
        let delay = Duration::from_millis(500);
        let p = start(ProviderOptions { delay, ..Default::default() }).await;
        let started = Instant::now();
        assert_eq!(get(&format!("{}/Patient/pat-001", p.base), &[]).await.status, StatusCode::OK);
        assert!(started.elapsed() >= delay);
        let started = Instant::now();
        assert_eq!(get(&format!("{}/metadata", p.base), &[]).await.status, StatusCode::OK);
        assert!(started.elapsed() < delay);
    }

    #[tokio::test]
    async fn serves_as_many_patients_as_asked() {
        let p = start(ProviderOptions { patients: 200, ..Default::default() }).await;
        assert_eq!(get(&format!("{}/Patient/pat-200", p.base), &[]).await.status, StatusCode::OK);
        assert_eq!(get(&format!("{}/Patient/pat-201", p.base), &[]).await.status, StatusCode::NOT_FOUND);
        let a = get(&format!("{}/Patient?_count=100&_offset=100", p.base), &[]).await;
        assert_eq!(a.json["total"], 200);
        assert_eq!(a.json["entry"].as_array().unwrap().len(), 100);
        assert!(a.json["link"].as_array().unwrap().iter().all(|l| l["relation"] != "next"));
    }

    #[tokio::test]
    async fn restarts_on_the_same_address() {
        let mut first = start(ProviderOptions::default()).await;
        let addr = first.addr;
        // A connection accepted by the first provider stays open across the
        // restart, as a gateway's pooled one would.
        let pooled = client();
        let url = format!("{}/metadata", first.base);
        assert_eq!(send(&pooled, Method::GET, &url, &[], "").await.status, StatusCode::OK);
        first.task.abort();
        assert!((&mut first.task).await.unwrap_err().is_cancelled(), "the listener is closed");
        let second = start_at(addr, ProviderOptions::default()).await;
        assert_eq!(second.addr, addr);
        assert_eq!(get(&url, &[]).await.status, StatusCode::OK);
        drop(pooled);
    }

    const RELEASES: [Version; 3] = [Version::R4, Version::Stu3, Version::Dstu2];

    fn speaking(v: Version) -> ProviderOptions {
        ProviderOptions { fhir_version: v, ..Default::default() }
    }

    fn listed_types(metadata: &Value) -> Vec<String> {
        metadata["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["type"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn fhir_version_argument() {
        assert_eq!(parse_fhir_version("r4"), Ok(Version::R4));
        assert_eq!(parse_fhir_version("STU3"), Ok(Version::Stu3));
        assert_eq!(parse_fhir_version("dstu2"), Ok(Version::Dstu2));
        assert!(parse_fhir_version("r5").is_err());
    }

    #[tokio::test]
    async fn metadata_declares_the_release_and_every_search_it_lists_works() {
        for (v, resource_type, number, media_type) in [
            (Version::R4, "CapabilityStatement", "4.0.1", "application/fhir+json"),
            (Version::Stu3, "CapabilityStatement", "3.0.2", "application/fhir+json"),
            (Version::Dstu2, "Conformance", "1.0.2", "application/json+fhir"),
        ] {
            let p = start(speaking(v)).await;
            let a = get(&format!("{}/metadata", p.base), &[]).await;
            assert_eq!(a.status, StatusCode::OK);
            assert!(header(&a, "content-type").starts_with(media_type), "{v:?}");
            assert_eq!(a.json["resourceType"], resource_type);
            assert_eq!(a.json["fhirVersion"], number);
            let expected: Vec<&str> = Kind::of_release(v).map(Kind::name).collect();
            assert_eq!(listed_types(&a.json), expected);
            assert_eq!(expected.len(), 9, "the eight types of the app and MedicationStatement");

            for resource in a.json["rest"][0]["resource"].as_array().unwrap() {
                let t = resource["type"].as_str().unwrap();
                for param in resource["searchParam"].as_array().unwrap() {
                    let name = param["name"].as_str().unwrap();
                    let value = match param["type"].as_str().unwrap() {
                        "reference" => "pat-001",
                        "date" => "ge2000",
                        _ if name == "category" => "vital-signs",
                        _ if name == "_id" || name == "identifier" => "x",
                        "token" => "female",
                        _ => "a",
                    };
                    let a = get(&format!("{}/{t}?{name}={value}", p.base), &[]).await;
                    assert_eq!(a.status, StatusCode::OK, "{v:?} {t}?{name}={value}: {}", a.json);
                    assert!(header(&a, "content-type").starts_with(media_type));
                }
            }
            // Outcomes are in the release's media type too.
            let a = get(&format!("{}/Observation?bogus=1", p.base), &[]).await;
            assert_eq!(a.status, StatusCode::BAD_REQUEST);
            assert!(header(&a, "content-type").starts_with(media_type));
        }
    }

    #[tokio::test]
    async fn without_leaves_types_out_of_metadata_and_answers_404() {
        let options =
            ProviderOptions { without: vec!["Coverage".into(), "Encounter".into()], ..speaking(Version::Stu3) };
        let p = start(options).await;
        let listed = listed_types(&get(&format!("{}/metadata", p.base), &[]).await.json);
        assert!(!listed.iter().any(|t| t == "Coverage" || t == "Encounter"), "{listed:?}");
        assert!(listed.iter().any(|t| t == "Observation"));
        for url in ["Coverage?patient=pat-001", "Coverage/cov-001-1", "Encounter", "Encounter/enc-001-1"] {
            let a = get(&format!("{}/{url}", p.base), &[]).await;
            assert_eq!(a.status, StatusCode::NOT_FOUND, "{url}");
            assert_eq!(a.json["resourceType"], "OperationOutcome");
        }
        let a =
            send(&client(), Method::POST, &format!("{}/Coverage/_search", p.base), &[FORM], "patient=pat-001").await;
        assert_eq!(a.status, StatusCode::NOT_FOUND);
        let a = get(&format!("{}/Observation?patient=pat-001", p.base), &[]).await;
        assert_eq!(a.status, StatusCode::OK);

        // A type the release does not define cannot be left out.
        let r4_order = ProviderOptions { without: vec!["MedicationOrder".into()], ..Default::default() };
        assert!(r4_order.served().unwrap_err().contains("MedicationOrder"));
        let dstu2_order = ProviderOptions { without: vec!["MedicationOrder".into()], ..speaking(Version::Dstu2) };
        assert!(!dstu2_order.served().unwrap().contains(&Kind::MedicationOrder));
        let (listener, _) = fhirgate_http::server::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let refused = serve(listener, "http://x/fhir".into(), r4_order).await.unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::InvalidInput);
    }

    #[tokio::test]
    async fn every_type_is_read_by_id_in_every_release() {
        for v in RELEASES {
            let p = start(speaking(v)).await;
            for kind in Kind::of_release(v) {
                let t = kind.name();
                let bundle = get(&format!("{}/{t}?_count=3&_offset=2", p.base), &[]).await.json;
                let entry = &bundle["entry"][0];
                let id = entry["resource"]["id"].as_str().unwrap_or_else(|| panic!("{v:?} {t}: {bundle}"));
                assert_eq!(entry["fullUrl"], format!("{}/{t}/{id}", p.base));
                let a = get(&format!("{}/{t}/{id}", p.base), &[]).await;
                assert_eq!(a.status, StatusCode::OK, "{t}/{id}");
                assert_eq!(a.json, entry["resource"], "{t}/{id}");
                let a = get(&format!("{}/{t}/{id}9", p.base), &[]).await;
                assert_eq!(
                    (a.status, a.json["resourceType"].as_str()),
                    (StatusCode::NOT_FOUND, Some("OperationOutcome"))
                );
            }
            // A type of another release is not served.
            let other = if v == Version::Dstu2 { "MedicationRequest" } else { "MedicationOrder" };
            assert_eq!(get(&format!("{}/{other}?patient=pat-001", p.base), &[]).await.status, StatusCode::NOT_FOUND);
        }
    }

    #[tokio::test]
    async fn searches_accept_only_the_parameters_of_their_release() {
        let cases: &[(Version, &str, StatusCode)] = &[
            (Version::R4, "Observation?patient=pat-001&_sort=-date&category=vital-signs", StatusCode::OK),
            (Version::R4, "Observation?patient=pat-001&_sort:desc=date", StatusCode::BAD_REQUEST),
            (Version::R4, "Observation?patient=pat-001&_sort=-code", StatusCode::BAD_REQUEST),
            (Version::R4, "Observation?patient:Patient=pat-001", StatusCode::BAD_REQUEST),
            (Version::R4, "Observation?patient=pat-001&code=8867-4", StatusCode::BAD_REQUEST),
            (Version::R4, "Condition?subject=Patient/pat-001&_sort=-recorded-date", StatusCode::OK),
            (Version::R4, "Condition?patient=pat-001&category=problem-list-item", StatusCode::BAD_REQUEST),
            (Version::R4, "AllergyIntolerance?subject=pat-001", StatusCode::BAD_REQUEST),
            (Version::R4, "Coverage?patient=pat-001", StatusCode::OK),
            (Version::R4, "Coverage?patient=pat-001&_sort=-date", StatusCode::BAD_REQUEST),
            (Version::R4, "MedicationRequest?patient=pat-001&_sort=-authoredon", StatusCode::OK),
            (Version::R4, "Location?name=spring", StatusCode::OK),
            (Version::R4, "Location?patient=pat-001", StatusCode::BAD_REQUEST),
            (Version::R4, "Patient?_sort=-date", StatusCode::BAD_REQUEST),
            (Version::Stu3, "Encounter?patient=pat-001&_sort=-date&_count=2", StatusCode::OK),
            (Version::Stu3, "Condition?patient=pat-001&_sort=-asserted-date", StatusCode::OK),
            (Version::Stu3, "Condition?patient=pat-001&_sort=-recorded-date", StatusCode::BAD_REQUEST),
            (Version::Stu3, "Coverage?beneficiary=pat-001", StatusCode::OK),
            (Version::Stu3, "MedicationStatement?subject=pat-001&_sort=effective", StatusCode::OK),
            (Version::Dstu2, "Observation?patient=pat-001&_sort:desc=date&category=vital-signs", StatusCode::OK),
            (Version::Dstu2, "Observation?patient=pat-001&_sort:asc=date", StatusCode::OK),
            (Version::Dstu2, "Observation?patient=pat-001&_sort=-date", StatusCode::BAD_REQUEST),
            (Version::Dstu2, "Condition?subject=pat-001", StatusCode::BAD_REQUEST),
            (Version::Dstu2, "Condition?patient=pat-001&_sort:desc=date-recorded", StatusCode::OK),
            (Version::Dstu2, "Encounter?subject=pat-001", StatusCode::BAD_REQUEST),
            (Version::Dstu2, "Encounter?patient=pat-001&_sort:desc=date&_count=2", StatusCode::OK),
            (Version::Dstu2, "MedicationOrder?patient=pat-001&_sort:desc=datewritten", StatusCode::OK),
            (Version::Dstu2, "Coverage?beneficiary=pat-001", StatusCode::BAD_REQUEST),
        ];
        for v in RELEASES {
            let p = start(speaking(v)).await;
            for (_, url, status) in cases.iter().filter(|(case, ..)| *case == v) {
                let a = get(&format!("{}/{url}", p.base), &[]).await;
                assert_eq!(a.status, *status, "{v:?} {url}: {}", a.json);
                let expected = if *status == StatusCode::OK { "Bundle" } else { "OperationOutcome" };
                assert_eq!(a.json["resourceType"], expected, "{url}");
            }
        }
    }

    /// The Python that runs `tests/python/validate_fhir.py`: the one
    /// `FHIR_VALIDATOR_PYTHON` names, else the tests' virtualenv `target/py`
    /// (see the README), provided it has the `fhir.resources` models.
    fn validator_python() -> Option<PathBuf> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
        let candidates = std::env::var_os("FHIR_VALIDATOR_PYTHON").map(PathBuf::from).into_iter();
        candidates.chain([target.join("py/bin/python")]).find(|py| {
            std::process::Command::new(py)
                .args(["-c", "import fhir.resources.R4B, fhir.resources.STU3, fhir.resources.DSTU2"])
                .output()
                .is_ok_and(|out| out.status.success())
        })
    }

    /// Every page of a search, following `next` links.
    async fn all_pages(first: &str) -> Vec<Value> {
        let mut pages = Vec::new();
        let mut url = Some(first.to_owned());
        while let Some(u) = url {
            let a = get(&u, &[]).await;
            assert_eq!(a.status, StatusCode::OK, "{u}: {}", a.json);
            url = a.json["link"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["relation"] == "next")
                .map(|l| l["url"].as_str().unwrap().to_owned());
            pages.push(a.json);
        }
        pages
    }

    #[tokio::test]
    async fn every_type_validates_in_every_release() {
        let Some(python) = validator_python() else {
            println!(
                "note: FHIR validation skipped; set FHIR_VALIDATOR_PYTHON to a Python with fhir.resources==7.1.0, \
                 or create target/py from tests/requirements.txt"
            );
            return;
        };
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/validate_fhir.py");
        for v in RELEASES {
            let p = start(speaking(v)).await;
            let dir = tempfile::tempdir().unwrap();
            let mut files = Vec::new();
            let mut write = |name: String, json: &Value| {
                let path = dir.path().join(name);
                std::fs::write(&path, json.to_string()).unwrap();
                files.push(path);
            };
            write("metadata.json".into(), &get(&format!("{}/metadata", p.base), &[]).await.json);
            write("outcome.json".into(), &get(&format!("{}/Patient?bogus=1", p.base), &[]).await.json);
            // Every resource of the default patients, a searchset per page.
            for kind in Kind::of_release(v) {
                let pages = all_pages(&format!("{}/{}?_count=100", p.base, kind.name())).await;
                assert!(pages[0]["total"].as_u64().unwrap() > 0, "{v:?} {kind:?}");
                for (n, page) in pages.iter().enumerate() {
                    write(format!("{}-{n}.json", kind.name()), page);
                }
            }
            let out = std::process::Command::new(&python)
                .arg(&script)
                .args(["--version", v.face()])
                .args(&files)
                .output()
                .expect("running the FHIR validator");
            let report = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "FHIR {} refused:\n{}{}",
                v.number(),
                report.lines().filter(|l| !l.contains(": valid ")).collect::<Vec<_>>().join("\n"),
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(report.lines().count(), files.len(), "{report}");
        }
    }
}
