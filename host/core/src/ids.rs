//! The shapes of the identifiers the gateway accepts: tenants (GUIDs),
//! providers, and the `Type/id` paths modules may read.

/// Whether `s` is a GUID (8-4-4-4-12 hex digits).
pub fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// A provider id: what policies, routing answers and audit records name.
pub fn valid_provider_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// `Type/id` with a FHIR resource type and id.
pub fn is_type_and_id(path: &str) -> bool {
    let Some((t, id)) = path.split_once('/') else { return false };
    let type_ok = (2..=64).contains(&t.len())
        && t.as_bytes()[0].is_ascii_uppercase()
        && t.bytes().all(|c| c.is_ascii_alphabetic());
    let id_ok = (1..=64).contains(&id.len())
        && id != "."
        && id != ".."
        && id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.');
    type_ok && id_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids() {
        assert!(is_guid("7f0c3a4e-2b51-4c1e-9d3a-0c6f5e2b8a11"));
        assert!(is_guid("7F0C3A4E-2B51-4C1E-9D3A-0C6F5E2B8A11"));
        assert!(!is_guid("7f0c3a4e2b514c1e9d3a0c6f5e2b8a11"));
        assert!(!is_guid("7f0c3a4e-2b51-4c1e-9d3a-0c6f5e2b8a1g"));
    }

    #[test]
    fn provider_ids() {
        assert!(valid_provider_id("st-mary_2"));
        assert!(!valid_provider_id(""));
        assert!(!valid_provider_id("a/b"));
        assert!(!valid_provider_id(&"x".repeat(65)));
    }

    #[test]
    fn only_type_and_id() {
        assert!(is_type_and_id("Location/ward-1"));
        assert!(!is_type_and_id("Location"));
        assert!(!is_type_and_id("Location/a/b"));
        assert!(!is_type_and_id("../admin"));
        assert!(!is_type_and_id("http://evil/Location/1"));
        assert!(!is_type_and_id("location/1"));
        assert!(!is_type_and_id("Location/1?x=2"));
        assert!(!is_type_and_id("Location/."));
        assert!(!is_type_and_id("Location/.."));
    }
}
