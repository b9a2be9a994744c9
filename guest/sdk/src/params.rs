//! Search parameter helpers.

use crate::types::Param;

/// Builds a parameter.
pub fn param(name: &str, value: &str) -> Param {
    Param { name: name.to_owned(), value: value.to_owned() }
}

/// Splits `name:modifier` into its parts.
pub fn split_modifier(name: &str) -> (&str, Option<&str>) {
    match name.split_once(':') {
        Some((base, modifier)) => (base, Some(modifier)),
        None => (name, None),
    }
}
