//! OperationOutcome: DSTU2 issues have `location` but no `expression`.

use super::elements::{BACKBONE, Obj, RESOURCE, keep, objects_mut};

const ISSUE: &[&str] = &["severity", "code", "details", "diagnostics", "location", "expression"];

pub fn r4_to_stu3(res: &mut Obj) {
    issues(res, ISSUE);
}

pub fn stu3_to_dstu2(res: &mut Obj) {
    issues(res, &ISSUE[..5]);
}

pub fn dstu2_to_stu3(res: &mut Obj) {
    issues(res, ISSUE);
}

fn issues(res: &mut Obj, allowed: &[&str]) {
    for issue in objects_mut(res, "issue") {
        keep(issue, BACKBONE, allowed);
    }
    keep(res, RESOURCE, &["issue"]);
}
