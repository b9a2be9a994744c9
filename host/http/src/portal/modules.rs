//! Operators' modules page: what serves (each role's module and digest),
//! what it replaced, the last policy refused and why, each shadow
//! candidate's comparison with the active module and the tenants where they
//! differ; reloading the policy file, rolling back one step at a time
//! through the history (and forward again), and uploading a module (a file field; checked, then activated, or refused with the
//! reason while the active one keeps serving).
//!
//! - `GET  /portal/modules`
//! - `POST /portal/modules/reload`, `POST /portal/modules/rollback`,
//!   `POST /portal/modules/forward`
//! - `POST /portal/modules/upload` (multipart: csrf, role, name, module)

use std::collections::HashMap;

use askama::Template as _;
use bytes::Bytes;
use http::{Response, StatusCode};

use fhirgate_core::failure::Body;
use fhirgate_gateway::activation::{Activation, Direction, ModuleStatus, UploadError};
use fhirgate_store::accounts::Role;

use super::{Session, csrf_refused, html, page, pages, rfc3339};

fn rows(modules: &[ModuleStatus]) -> Vec<pages::ModuleLine> {
    modules
        .iter()
        .map(|m| pages::ModuleLine {
            role: m.role.to_owned(),
            tenant: m.tenant.clone().unwrap_or_else(|| "every tenant".into()),
            module: m.module.clone(),
            digest: m.digest.clone(),
        })
        .collect()
}

/// The fields of a `multipart/form-data` body: name → bytes. `None` when
/// the body is not one.
pub(super) fn multipart(content_type: &str, body: Bytes) -> Option<HashMap<String, Bytes>> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))
        .map(|b| b.trim_matches('"'))
        .filter(|b| !b.is_empty() && b.len() <= 70)?;
    let delimiter = format!("--{boundary}").into_bytes();
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|i| i + from)
    };
    let mut fields = HashMap::new();
    let mut at = find(&body, &delimiter, 0)? + delimiter.len();
    loop {
        if body.get(at..at + 2) == Some(b"--") {
            return Some(fields);
        }
        let head_start = at + 2; // CRLF after the delimiter
        let head_end = find(&body, b"\r\n\r\n", head_start)?;
        let head = std::str::from_utf8(body.get(head_start..head_end)?).ok()?;
        let next = find(&body, &[b"\r\n".as_slice(), &delimiter].concat(), head_end + 4)?;
        let name = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))
            .and_then(|l| l.split(';').map(str::trim).find_map(|p| p.strip_prefix("name=")))
            .map(|n| n.trim_matches('"').to_owned())?;
        if head_end + 4 > next {
            return None;
        }
        fields.insert(name, body.slice(head_end + 4..next));
        at = next + 2 + delimiter.len();
    }
}

impl Session<'_> {
    fn runs_modules(&self) -> bool {
        self.user.roles.contains(&Role::Operator)
    }

    pub(super) async fn modules(self, notice: Option<&str>, error: Option<&str>) -> Response<Body> {
        if !self.runs_modules() {
            return page(StatusCode::FORBIDDEN, "This page is for the gateway's operators.".into());
        }
        let gw = self.portal.gw;
        let Some(activation) = gw.activation() else {
            return page(StatusCode::NOT_FOUND, "This gateway does not watch a policy file.".into());
        };
        let status = activation.status(&gw.served());
        let shadows = status
            .shadows
            .iter()
            .map(|s| pages::ShadowLine {
                role: s.role.clone(),
                module: s.module.clone(),
                sample: format!("{:.0}%", s.sample * 100.0),
                compared: s.compared,
                same: s.same,
                different: s.different,
                faults: s.candidate_faults,
                differing: s.differing_tenants.iter().map(|(t, n)| format!("{t}: {n}")).collect(),
            })
            .collect();
        let view = pages::Modules {
            policy: status.policy.clone(),
            partner: status.partner.clone(),
            generation: status.generation,
            activated_at: status.activated_at.map(|a| rfc3339(a as i64)),
            modules: rows(&status.modules),
            previous: status.previous.as_deref().map(rows),
            rollback_steps: status.rollback_steps,
            next: status.next.as_deref().map(rows),
            forward_steps: status.forward_steps,
            rejection: status.last_rejection.as_ref().map(|r| (rfc3339(r.at as i64), r.reason.clone())),
            shadows,
            csrf: &self.csrf,
            notice,
            error,
        };
        let code = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
        match view.render() {
            Ok(t) => html(code, t),
            Err(e) => page(StatusCode::INTERNAL_SERVER_ERROR, format!("The page could not be drawn: {e}")),
        }
    }

    /// Whether this session may change what serves (checked for an upload
    /// before its body is read): `None` if so, else the answer.
    pub(super) fn may_upload(&self) -> Option<Response<Body>> {
        if !self.runs_modules() {
            return Some(page(StatusCode::FORBIDDEN, "This page is for the gateway's operators.".into()));
        }
        if self.needs_reauth() {
            return Some(page(
                StatusCode::FORBIDDEN,
                "Sign in again to change what serves: your sign-in is too old for this.".into(),
            ));
        }
        None
    }

    /// The policy's activation, if this form may change what serves.
    fn may_run(&self, form: &HashMap<String, String>) -> Result<&Activation, Box<Response<Body>>> {
        if !self.csrf_ok(form) {
            return Err(Box::new(csrf_refused()));
        }
        if let Some(refused) = self.may_upload() {
            return Err(Box::new(refused));
        }
        self.portal
            .gw
            .activation()
            .ok_or_else(|| Box::new(page(StatusCode::NOT_FOUND, "This gateway does not watch a policy file.".into())))
    }

    pub(super) async fn reload_policy(self, form: &HashMap<String, String>) -> Response<Body> {
        let result = match self.may_run(form) {
            Ok(activation) => activation.reload(&self.portal.gw.served()).await,
            Err(refused) => return *refused,
        };
        tracing::info!(target: "fhirgate::audit", user = %self.user.username, ok = result.is_ok(), "policy reload from the portal");
        match result {
            Ok(s) => {
                self.modules(Some(&format!("The policy file is active (generation {}).", s.generation)), None).await
            }
            Err(r) => {
                let message = format!("Not activated; the active policy keeps serving: {}", r.reason);
                self.modules(None, Some(&message)).await
            }
        }
    }

    /// One step back (`direction` back) or forward through the history.
    pub(super) async fn step(self, form: &HashMap<String, String>, direction: Direction) -> Response<Body> {
        let result = match self.may_run(form) {
            Ok(activation) => activation.step(&self.portal.gw.served(), direction).await,
            Err(refused) => return *refused,
        };
        let what = match direction {
            Direction::Back => "policy rollback from the portal",
            Direction::Forward => "policy step forward from the portal",
        };
        tracing::info!(target: "fhirgate::audit", user = %self.user.username, ok = result.is_ok(), "{what}");
        let done = match direction {
            Direction::Back => "Rolled back: the modules that served before serve again.",
            Direction::Forward => "Stepped forward: the modules the rollback replaced serve again.",
        };
        match result {
            Ok(_) => self.modules(Some(done), None).await,
            Err(message) => self.modules(None, Some(&message)).await,
        }
    }

    /// A module uploaded from the page: `fields` of the multipart form.
    pub(super) async fn upload(self, fields: HashMap<String, Bytes>) -> Response<Body> {
        let text = |k: &str| fields.get(k).and_then(|v| std::str::from_utf8(v).ok()).unwrap_or_default().trim();
        let form: HashMap<String, String> = [("csrf".to_owned(), text("csrf").to_owned())].into();
        let activation = match self.may_run(&form) {
            Ok(a) => a,
            Err(refused) => return *refused,
        };
        let role = text("role").to_owned();
        let name = Some(text("name")).filter(|n| !n.is_empty()).unwrap_or(&role).to_owned();
        let Some(bytes) = fields.get("module").filter(|b| !b.is_empty()).cloned() else {
            return self.modules(None, Some("Choose the module's .wasm file.")).await;
        };
        let result = activation.upload(&self.portal.gw.served(), &role, &name, bytes, None).await;
        tracing::info!(target: "fhirgate::audit", user = %self.user.username, role = %role, ok = result.is_ok(), "module upload from the portal");
        match result {
            Ok(_) => self.modules(Some(&format!("{name} is active as the {role} module.")), None).await,
            Err(UploadError::Invalid(message)) => self.modules(None, Some(&message)).await,
            Err(UploadError::Refused(r)) => {
                let message = format!("Not activated; the active module keeps serving: {}", r.reason);
                self.modules(None, Some(&message)).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_fields_are_read_whatever_bytes_they_hold() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nabc\r\n--XyZ\r\n\
                     Content-Disposition: form-data; name=\"module\"; filename=\"m.wasm\"\r\n\
                     Content-Type: application/wasm\r\n\r\n\x00asm\r\n--X\x01\r\n--XyZ--\r\n";
        let body = Bytes::from_static(body);
        let fields = multipart("multipart/form-data; boundary=XyZ", body.clone()).unwrap();
        assert_eq!(&fields["csrf"][..], b"abc");
        assert_eq!(&fields["module"][..], b"\x00asm\r\n--X\x01");
        assert!(multipart("multipart/form-data", body).is_none(), "no boundary");
        let broken = Bytes::from_static(b"--XyZ\r\nbroken");
        assert!(multipart("multipart/form-data; boundary=XyZ", broken).is_none());
        assert!(multipart("multipart/form-data; boundary=XyZ", Bytes::new()).is_none());
    }
}
