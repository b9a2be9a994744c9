//! Location: the app reads it through Encounter's reference (its display);
//! `type` is a list in R4, and DSTU2 lacks aliases, endpoints and the
//! operational status.

use super::elements::{Obj, RESOURCE, keep, to_single};
use super::patient::telecom_to_dstu2;

const STU3: &[&str] = &[
    "identifier",
    "status",
    "operationalStatus",
    "name",
    "alias",
    "description",
    "mode",
    "type",
    "telecom",
    "address",
    "physicalType",
    "position",
    "managingOrganization",
    "partOf",
    "endpoint",
];

const DSTU2: &[&str] = &[
    "identifier",
    "status",
    "name",
    "description",
    "type",
    "mode",
    "telecom",
    "address",
    "physicalType",
    "position",
    "managingOrganization",
    "partOf",
];

pub fn r4_to_stu3(res: &mut Obj) {
    to_single(res, "type");
    keep(res, RESOURCE, STU3);
}

pub fn stu3_to_dstu2(res: &mut Obj) {
    telecom_to_dstu2(res);
    keep(res, RESOURCE, DSTU2);
}

pub fn dstu2_to_stu3(res: &mut Obj) {
    keep(res, RESOURCE, STU3);
}
