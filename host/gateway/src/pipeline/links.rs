//! Phase 7, seal links: a searchset's `next`/`previous` links become opaque
//! cursors on the gateway, after shaping has moved them onto the gateway's
//! base. Following one runs the same phases again, without routing (the
//! router chose the provider for the first page) but with authentication,
//! the tenant check and the directory's approval.

use fhirgate_core::failure::Failure;
use fhirgate_sandbox::bindings::types::{Claims, Header, Interaction};
use http::StatusCode;
use serde_json::Value;

use super::audit::Audit;
use super::route::{check_path, route_headers};
use super::{Ctx, exchange, forward_and_shape, tenant_refused};
use crate::directory::ProviderRoute;
use crate::paging::{CURSOR_LIFETIME_SECONDS, Cursor, PAGE_PARAM};

/// Follows a page link: the cursor must be ours, unexpired, issued on this
/// face for this token's tenant, and its provider still active for it.
pub(super) async fn follow_page(
    ctx: &Ctx,
    claims: &Claims,
    text: &str,
    audit: &mut Audit,
) -> Result<(StatusCode, Vec<u8>), Failure> {
    let invalid = || Failure::client(StatusCode::BAD_REQUEST, "The page link is not valid; run the search again.");
    let cursor = ctx.gw.sealer().open(text, fhirgate_core::clock::now_seconds()).map_err(|e| match e {
        crate::paging::CursorError::Expired => Failure::client(StatusCode::GONE, e.to_string()),
        crate::paging::CursorError::Invalid => invalid(),
    })?;
    if !cursor.tenant.eq_ignore_ascii_case(&claims.tenant_id)
        || cursor.client != claims.client_id
        || cursor.face != ctx.face.face()
    {
        return Err(invalid());
    }
    audit.resource_type = cursor.resource_type.clone();
    let provider = ctx.directory.resolve(&claims.tenant_id, &cursor.provider).map_err(tenant_refused)?;
    audit.provider = Some(provider.id.clone());
    let (path, query) = cursor.link.split_once('?').unwrap_or((cursor.link.as_str(), ""));
    check_path(path).map_err(|_| invalid())?;
    let url = if query.is_empty() {
        format!("{}/{path}", provider.base_url)
    } else {
        format!("{}/{path}?{query}", provider.base_url)
    };
    let exchange = exchange(ctx, &provider, Interaction::Search);
    let headers: Vec<Header> =
        cursor.headers.iter().map(|(name, value)| Header { name: name.clone(), value: value.clone() }).collect();
    let headers = route_headers(&headers)?;
    let shaper = ctx.policy.shaper_for(&claims.tenant_id);
    let (status, body) = forward_and_shape(
        ctx,
        (shaper, &mut shaper.lease(&claims.tenant_id)),
        &claims.tenant_id,
        &provider,
        &exchange,
        &url,
        headers,
    )
    .await?;
    Ok((status, seal_links(ctx, claims, &provider, cursor.resource_type.as_deref(), &cursor.headers, body)))
}

/// Replaces the links of a shaped searchset (already moved onto the
/// gateway's base by the shaping module) with sealed cursors.
pub(super) fn seal_links(
    ctx: &Ctx,
    claims: &Claims,
    provider: &ProviderRoute,
    resource_type: Option<&str>,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Vec<u8> {
    // Cheap pre-check: most answers to reads carry no links.
    if !body.windows(6).any(|w| w == b"\"link\"") {
        return body;
    }
    // Only the top level is parsed: the entries (nearly all of a page) are
    // copied through as they are.
    let Ok(RawMembers(members)) = serde_json::from_slice::<RawMembers>(&body) else { return body };
    // A repeated member counts once, as its last occurrence (as when the
    // whole answer is parsed).
    let last_at: std::collections::HashMap<&str, usize> =
        members.iter().enumerate().map(|(i, (name, _))| (name.as_str(), i)).collect();
    let last = |name: &str| last_at.get(name).copied();
    let kind = last("resourceType").and_then(|i| serde_json::from_str::<String>(members[i].1.get()).ok());
    if kind.as_deref() != Some("Bundle") {
        return body;
    }
    let Some(link_at) = last("link") else { return body };
    let base = ctx.gateway_base();
    let expires_at = fhirgate_core::clock::now_seconds() + CURSOR_LIFETIME_SECONDS;
    let seal = |links: &mut Vec<Value>| {
        links.retain_mut(|link| {
            let Some(url) = link.get("url").and_then(Value::as_str) else { return false };
            let Some(rel) = url.strip_prefix(&base) else { return false };
            let rel = rel.trim_start_matches('/');
            if rel.is_empty() || rel.starts_with('?') {
                return false;
            }
            let cursor = Cursor {
                tenant: claims.tenant_id.to_ascii_lowercase(),
                provider: provider.id.clone(),
                face: ctx.face.face().to_owned(),
                resource_type: resource_type.map(str::to_owned),
                client: claims.client_id.clone(),
                link: rel.to_owned(),
                headers: headers.to_vec(),
                expires_at,
            };
            match ctx.gw.sealer().seal(&cursor) {
                Some(sealed) => {
                    link["url"] = Value::String(format!("{base}?{PAGE_PARAM}={sealed}"));
                    true
                }
                None => false,
            }
        });
    };
    // Links that are not an array: the answer as it is.
    let Ok(mut links) = serde_json::from_str::<Vec<Value>>(members[link_at].1.get()) else { return body };
    seal(&mut links);
    let mut out = Vec::with_capacity(body.len() + 1024);
    out.push(b'{');
    let mut first = true;
    for (i, (name, value)) in members.iter().enumerate() {
        if let Some(at) = last(name)
            && at != i
        {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        if serde_json::to_writer(&mut out, name).is_err() {
            return body;
        }
        out.push(b':');
        if i == link_at {
            if serde_json::to_writer(&mut out, &links).is_err() {
                return body;
            }
        } else {
            out.extend_from_slice(value.get().as_bytes());
        }
    }
    out.push(b'}');
    out
}

/// A JSON object's members in document order, their values unparsed.
pub(super) struct RawMembers<'a>(Vec<(String, &'a serde_json::value::RawValue)>);

impl<'de> serde::Deserialize<'de> for RawMembers<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = RawMembers<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut members = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    members.push((name, map.next_value()?));
                }
                Ok(RawMembers(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_members_keep_order_and_values_byte_for_byte() {
        let text = br#"{"resourceType":"Bundle","entry":[{"a":1.50,"b":"x\u0041"}],"link":[],"type":"searchset"}"#;
        let RawMembers(members) = serde_json::from_slice(text).unwrap();
        let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["resourceType", "entry", "link", "type"]);
        assert_eq!(members[1].1.get(), r#"[{"a":1.50,"b":"x\u0041"}]"#);
        assert!(serde_json::from_slice::<RawMembers>(b"[1]").is_err());
        assert!(serde_json::from_slice::<RawMembers>(br#"{"a":1} x"#).is_err());
    }

    use fhirgate_core::Version;
    use fhirgate_sandbox::bindings::types::Claims;

    use super::super::testing;

    fn searchset(base: &str) -> Vec<u8> {
        serde_json::json!({
            "resourceType": "Bundle", "type": "searchset", "total": 3,
            "link": [
                { "relation": "self", "url": format!("{base}/Patient?family=chau") },
                { "relation": "next", "url": format!("{base}/Patient?family=chau&_getpagesoffset=2") },
                { "relation": "previous", "url": "https://provider.example/fhir/Patient?page=0" },
            ],
            "entry": [{ "resource": { "resourceType": "Patient", "id": "p1" } }],
        })
        .to_string()
        .into_bytes()
    }

    #[tokio::test]
    async fn page_links_become_cursors_only_this_client_and_tenant_can_follow() {
        let gw = testing::gateway().await;
        let ctx = testing::ctx(&gw, Version::Stu3);
        let provider = ctx.directory.resolve(testing::TENANT, "demo").unwrap();
        let base = ctx.gateway_base();
        let sealed = seal_links(&ctx, &testing::claims(), &provider, Some("Patient"), &[], searchset(&base));
        let sealed: Value = serde_json::from_slice(&sealed).unwrap();
        let links = sealed["link"].as_array().unwrap();
        // The link off the gateway's base (the provider's own) is dropped.
        assert_eq!(links.len(), 2, "{sealed}");
        let next = links[1]["url"].as_str().unwrap();
        let text = next.strip_prefix(&format!("{base}?{PAGE_PARAM}=")).expect("a cursor on the gateway's base");
        assert!(!next.contains("getpagesoffset"), "the provider's paging is not visible: {next}");
        let cursor = gw.sealer().open(text, fhirgate_core::clock::now_seconds()).unwrap();
        assert_eq!(
            (cursor.tenant.as_str(), cursor.provider.as_str(), cursor.face.as_str()),
            (testing::TENANT, "demo", "stu3")
        );
        assert_eq!(cursor.link, "Patient?family=chau&_getpagesoffset=2");
        assert_eq!(sealed["entry"][0]["resource"]["id"], "p1");

        // Another client of the same tenant cannot follow it: refused before
        // anything is forwarded.
        let other = Claims { client_id: "another-app".into(), ..testing::claims() };
        let mut audit = Audit::default();
        let f = follow_page(&ctx, &other, text, &mut audit).await.unwrap_err();
        assert_eq!(f.status, StatusCode::BAD_REQUEST);
        // Nor can anyone on the other face, or with a cursor not sealed here.
        let dstu2 = testing::ctx(&gw, Version::Dstu2);
        assert_eq!(
            follow_page(&dstu2, &testing::claims(), text, &mut audit).await.unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        let forged = format!("{}x", &text[..text.len() - 1]);
        assert_eq!(
            follow_page(&ctx, &testing::claims(), &forged, &mut audit).await.unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[tokio::test]
    async fn an_answer_without_links_is_left_as_it_is() {
        let gw = testing::gateway().await;
        let ctx = testing::ctx(&gw, Version::Stu3);
        let provider = ctx.directory.resolve(testing::TENANT, "demo").unwrap();
        let body = br#"{"resourceType":"Patient","id":"p1"}"#.to_vec();
        assert_eq!(seal_links(&ctx, &testing::claims(), &provider, None, &[], body.clone()), body);
    }
}
