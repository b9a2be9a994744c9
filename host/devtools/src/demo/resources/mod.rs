//! The demo provider's data in the FHIR release it speaks: the synthetic
//! patients and, for each of them, vital signs, conditions, encounters,
//! allergies, prescriptions, medication statements and a coverage, plus the
//! shared locations. Every fact is drawn from the patient's index alone, so
//! each release tells the same history, and only the patients and locations
//! are held in memory: a patient's other resources are built when asked for.
//!
//! Layout: one module per resource type (`medication` holds the prescription
//! and the statement); this one names the types, builds the data set and
//! holds what the modules share (draws, dates, codings, references).

pub mod allergy;
pub mod condition;
pub mod coverage;
pub mod encounter;
pub mod location;
pub mod medication;
pub mod observation;
pub mod patient;

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::{Value, json};

use super::data;
use fhirgate_core::fhir::Version;

/// A resource type the demo provider can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Patient,
    Observation,
    Condition,
    Encounter,
    Location,
    AllergyIntolerance,
    /// R4 and STU3 prescriptions.
    MedicationRequest,
    /// DSTU2 prescriptions.
    MedicationOrder,
    MedicationStatement,
    Coverage,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Patient,
        Kind::Observation,
        Kind::Condition,
        Kind::Encounter,
        Kind::Location,
        Kind::AllergyIntolerance,
        Kind::MedicationRequest,
        Kind::MedicationOrder,
        Kind::MedicationStatement,
        Kind::Coverage,
    ];

    /// The `resourceType`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Patient => "Patient",
            Kind::Observation => "Observation",
            Kind::Condition => "Condition",
            Kind::Encounter => "Encounter",
            Kind::Location => "Location",
            Kind::AllergyIntolerance => "AllergyIntolerance",
            Kind::MedicationRequest => "MedicationRequest",
            Kind::MedicationOrder => "MedicationOrder",
            Kind::MedicationStatement => "MedicationStatement",
            Kind::Coverage => "Coverage",
        }
    }

    /// Whether release `v` defines this type: MedicationOrder became
    /// MedicationRequest in STU3.
    pub fn in_release(self, v: Version) -> bool {
        match self {
            Kind::MedicationOrder => v == Version::Dstu2,
            Kind::MedicationRequest => v != Version::Dstu2,
            _ => true,
        }
    }

    /// Every type release `v` defines, in the order `/metadata` lists them.
    pub fn of_release(v: Version) -> impl Iterator<Item = Kind> {
        Kind::ALL.into_iter().filter(move |k| k.in_release(v))
    }

    /// The type named `name` (case as FHIR spells it) in release `v`.
    pub fn named(v: Version, name: &str) -> Option<Kind> {
        Kind::of_release(v).find(|k| k.name() == name)
    }
}

/// The resources of one release, for `patients` synthetic patients.
pub struct Dataset {
    version: Version,
    /// Shaped for `version` once: they are searched on every Patient search.
    patients: Vec<Value>,
    /// Patient id → index.
    by_id: HashMap<String, usize>,
    locations: Vec<Value>,
}

impl Dataset {
    pub fn new(version: Version, patients: usize) -> Self {
        let patients: Vec<Value> = (0..patients).map(|i| patient::patient(version, i)).collect();
        let by_id = (0..patients.len()).map(|i| (data::patient_id(i), i)).collect();
        Self { version, patients, by_id, locations: location::all(version) }
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// The index of the patient with id `id`.
    pub fn patient_index(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// Patient `i`'s own resources of `kind` (none for Patient and Location,
    /// which belong to no patient), oldest first.
    pub fn of_patient(&self, kind: Kind, i: usize) -> Vec<Value> {
        let v = self.version;
        match kind {
            Kind::Patient | Kind::Location => Vec::new(),
            Kind::Observation => observation::for_patient(v, i),
            Kind::Condition => condition::for_patient(v, i),
            Kind::Encounter => encounter::for_patient(v, i),
            Kind::AllergyIntolerance => allergy::for_patient(v, i),
            Kind::MedicationRequest | Kind::MedicationOrder => medication::prescriptions(v, i),
            Kind::MedicationStatement => medication::statements(v, i),
            Kind::Coverage => coverage::for_patient(v, i),
        }
    }

    /// Every resource of `kind`, or only those of the patients `only`, in a
    /// stable order: by patient, then oldest first.
    pub fn all(&self, kind: Kind, only: Option<&[usize]>) -> Vec<Cow<'_, Value>> {
        let every: Vec<usize>;
        let which = match only {
            Some(which) => which,
            None => {
                every = (0..self.patients.len()).collect();
                &every
            }
        };
        match kind {
            Kind::Patient => which.iter().filter_map(|&i| self.patients.get(i)).map(Cow::Borrowed).collect(),
            Kind::Location => self.locations.iter().map(Cow::Borrowed).collect(),
            _ => which
                .iter()
                .filter(|&&i| i < self.patients.len())
                .flat_map(|&i| self.of_patient(kind, i))
                .map(Cow::Owned)
                .collect(),
        }
    }

    /// The resource of `kind` with id `id`. Ids name the patient they belong
    /// to (`obs-001-3` is patient `pat-001`'s third Observation), so only
    /// that patient's resources are built.
    pub fn read(&self, kind: Kind, id: &str) -> Option<Cow<'_, Value>> {
        match kind {
            Kind::Patient => self.patient_index(id).map(|i| Cow::Borrowed(&self.patients[i])),
            Kind::Location => self.locations.iter().find(|l| l["id"] == id).map(Cow::Borrowed),
            _ => {
                let i = owner(id)?;
                if i >= self.patients.len() {
                    return None;
                }
                self.of_patient(kind, i).into_iter().find(|r| r["id"] == id).map(Cow::Owned)
            }
        }
    }
}

/// The id of patient `i`'s `k`-th resource (from 1) of the type `prefix`
/// stands for: `obs-001-3`. The middle part is the patient id's number.
pub fn resource_id(prefix: &str, i: usize, k: usize) -> String {
    format!("{prefix}-{:03}-{k}", i + 1)
}

/// The index of the patient whose resource `id` is (see [`resource_id`]).
fn owner(id: &str) -> Option<usize> {
    let mut parts = id.split('-');
    let (_prefix, number, _k) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    number.parse::<usize>().ok()?.checked_sub(1)
}

/// The moment the synthetic record describes: 2026-01-15T09:30:00Z, the
/// patients' `meta.lastUpdated`. Every date lies before it.
pub const AS_OF: i64 = 1_768_469_400;
const DAY: i64 = 86_400;
const MINUTE: i64 = 60;

/// A deterministic stream of numbers for one patient and one kind of data,
/// so each kind's facts are independent of the others'.
pub struct Draw(u64);

impl Draw {
    pub fn new(i: usize, salt: u64) -> Self {
        Draw(data::mix((i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D) ^ salt))
    }

    pub fn number(&mut self) -> u64 {
        self.0 = data::mix(self.0);
        self.0
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.number() % n as u64) as usize
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.number() % (hi - lo + 1) as u64) as i64
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.number() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// `n` distinct items of `items` (all of them if there are fewer).
    pub fn distinct<'a, T>(&mut self, items: &'a [T], n: usize) -> Vec<&'a T> {
        let mut left: Vec<&T> = items.iter().collect();
        (0..n.min(items.len())).map(|_| left.remove(self.below(left.len()))).collect()
    }
}

/// A moment as a FHIR `dateTime` (and `instant`) in UTC: `2025-03-02T08:15:00Z`.
pub fn date_time(secs: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The day of a moment as a FHIR `date`: `2025-03-02`.
pub fn date(secs: i64) -> String {
    date_time(secs)[..10].to_owned()
}

/// A moment `days` days and `minutes` minutes before [`AS_OF`].
pub fn before(days: i64, minutes: i64) -> i64 {
    AS_OF - days * DAY - minutes * MINUTE
}

/// The moment `minute` minutes into the day (UTC) `days` days before the
/// day of [`AS_OF`]: clinics and wards record in the daytime.
pub fn during_day(days: i64, minute: i64) -> i64 {
    AS_OF - AS_OF.rem_euclid(DAY) - days * DAY + minute * MINUTE
}

/// The URL of an HL7 code system in release `v`: R4 moved them to
/// `terminology.hl7.org` (`observation-category`, `v3-ActCode`, `v2-0203`).
pub fn hl7_system(v: Version, name: &str) -> String {
    if v == Version::R4 {
        return format!("http://terminology.hl7.org/CodeSystem/{name}");
    }
    if let Some(table) = name.strip_prefix("v2-") {
        format!("http://hl7.org/fhir/v2/{table}")
    } else if let Some(system) = name.strip_prefix("v3-") {
        format!("http://hl7.org/fhir/v3/{system}")
    } else {
        format!("http://hl7.org/fhir/{name}")
    }
}

pub const LOINC: &str = "http://loinc.org";
pub const SNOMED: &str = "http://snomed.info/sct";
pub const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
pub const UCUM: &str = "http://unitsofmeasure.org";

pub fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({ "system": system, "code": code, "display": display })
}

/// A CodeableConcept of one coding, with `text`.
pub fn concept(system: &str, code: &str, display: &str, text: &str) -> Value {
    json!({ "coding": [coding(system, code, display)], "text": text })
}

/// A reference to patient `i`.
pub fn patient_ref(i: usize) -> Value {
    json!({ "reference": format!("Patient/{}", data::patient_id(i)) })
}

/// The practitioner who looks after patient `i`: the patient's general
/// practitioner when there is one.
pub fn practitioner_ref(i: usize) -> Value {
    let (id, display) = data::practitioner(i);
    json!({ "reference": format!("Practitioner/{id}"), "display": display })
}

/// `meta` of every resource but Patient.
pub fn meta() -> Value {
    json!({ "versionId": "1", "lastUpdated": date_time(AS_OF) })
}

/// A generated narrative of one paragraph.
pub fn narrative(text: &str) -> Value {
    let escaped = text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    json!({ "status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{escaped}</div>") })
}

/// The date a search sorts and filters a resource by: when it was measured,
/// met, recorded or written.
pub fn sort_date(r: &Value) -> Option<&str> {
    [
        "/effectiveDateTime",
        "/effectivePeriod/start",
        "/period/start",
        "/recordedDate",
        "/assertedDate",
        "/dateRecorded",
        "/authoredOn",
        "/dateWritten",
    ]
    .iter()
    .find_map(|p| r.pointer(p).and_then(Value::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_fhir_dates() {
        assert_eq!(date_time(AS_OF), "2026-01-15T09:30:00Z");
        assert_eq!(date(before(15, 0)), "2025-12-31");
        assert_eq!(date_time(during_day(1, 8 * 60 + 5)), "2026-01-14T08:05:00Z");
    }

    #[test]
    fn ids_name_their_patient() {
        assert_eq!(resource_id("obs", 0, 3), "obs-001-3");
        assert_eq!(owner("obs-001-3"), Some(0));
        assert_eq!(owner("obs-10000-1"), Some(9_999));
        for bad in ["obs-000-1", "obs-001", "obs-x-1", "obs-001-1-1", "pat-001"] {
            assert_eq!(owner(bad), None, "{bad}");
        }
    }

    #[test]
    fn hl7_systems_per_release() {
        assert_eq!(hl7_system(Version::R4, "v3-ActCode"), "http://terminology.hl7.org/CodeSystem/v3-ActCode");
        assert_eq!(hl7_system(Version::Stu3, "v3-ActCode"), "http://hl7.org/fhir/v3/ActCode");
        assert_eq!(hl7_system(Version::Dstu2, "v2-0203"), "http://hl7.org/fhir/v2/0203");
        assert_eq!(hl7_system(Version::Stu3, "observation-category"), "http://hl7.org/fhir/observation-category");
    }

    #[test]
    fn every_release_names_its_types() {
        let names = |v| Kind::of_release(v).map(Kind::name).collect::<Vec<_>>();
        assert!(names(Version::Dstu2).contains(&"MedicationOrder"));
        assert!(!names(Version::Dstu2).contains(&"MedicationRequest"));
        assert!(names(Version::Stu3).contains(&"MedicationRequest"));
        assert_eq!(names(Version::R4).len(), 9);
        assert_eq!(Kind::named(Version::R4, "MedicationOrder"), None);
        assert_eq!(Kind::named(Version::Dstu2, "Coverage"), Some(Kind::Coverage));
    }

    #[test]
    fn draws_are_deterministic_and_per_patient() {
        let a: Vec<u64> = (0..4).map(|_| Draw::new(5, 1).number()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Draw::new(5, 1).number(), Draw::new(6, 1).number());
        assert_ne!(Draw::new(5, 1).number(), Draw::new(5, 2).number());
        let mut d = Draw::new(0, 0);
        let picked = d.distinct(&[1, 2, 3, 4], 3);
        let set: std::collections::BTreeSet<_> = picked.iter().collect();
        assert_eq!(set.len(), 3);
    }

    /// Patient `i`'s resources of every type but Patient and Location.
    fn clinical(data: &Dataset, i: usize) -> Vec<(Kind, Value)> {
        Kind::of_release(data.version()).flat_map(|k| data.of_patient(k, i).into_iter().map(move |r| (k, r))).collect()
    }

    #[test]
    fn every_patient_has_the_data_the_app_reads_in_every_release() {
        for v in [Version::R4, Version::Stu3, Version::Dstu2] {
            let data = Dataset::new(v, 150);
            let mut ids = std::collections::HashSet::new();
            for i in 0..150 {
                let count = |kind| data.of_patient(kind, i).len();
                let prescriptions = if v == Version::Dstu2 { Kind::MedicationOrder } else { Kind::MedicationRequest };
                assert!((10..=15).contains(&count(Kind::Observation)), "{v:?} {i}");
                assert!((1..=3).contains(&count(Kind::Condition)));
                assert!((1..=4).contains(&count(Kind::Encounter)));
                assert!(count(Kind::AllergyIntolerance) <= 2);
                assert!((1..=3).contains(&count(prescriptions)));
                assert!(count(Kind::MedicationStatement) <= 1);
                assert_eq!(count(Kind::Coverage), 1);
                for (kind, r) in clinical(&data, i) {
                    assert_eq!(r["resourceType"], kind.name());
                    let id = r["id"].as_str().unwrap().to_owned();
                    assert!(ids.insert(id.clone()), "{id} twice");
                    assert_eq!(owner(&id), Some(i));
                    assert_eq!(data.read(kind, &id).as_deref(), Some(&r));
                    assert!(sort_date(&r).is_none_or(|d| d < date_time(AS_OF).as_str()), "{id} is in the future");
                }
            }
            for l in &data.locations {
                assert!(ids.insert(l["id"].as_str().unwrap().to_owned()));
                assert!(l["name"].is_string());
            }
        }
    }

    #[test]
    fn the_same_facts_in_every_release() {
        let (r4, stu3, dstu2) =
            (Dataset::new(Version::R4, 60), Dataset::new(Version::Stu3, 60), Dataset::new(Version::Dstu2, 60));
        for i in 0..60 {
            let ids = |d: &Dataset| clinical(d, i).iter().map(|(_, r)| r["id"].clone()).collect::<Vec<_>>();
            assert_eq!(ids(&r4), ids(&stu3));
            assert_eq!(ids(&r4), ids(&dstu2));
            let obs = |d: &Dataset| d.of_patient(Kind::Observation, i);
            for ((a, b), c) in obs(&r4).iter().zip(obs(&stu3)).zip(obs(&dstu2)) {
                assert_eq!(a["valueQuantity"], b["valueQuantity"]);
                assert_eq!(a["component"], c["component"]);
                assert_eq!(sort_date(a), sort_date(&c));
            }
            let gp = data::practitioner(i).1;
            let rx = &r4.of_patient(Kind::MedicationRequest, i)[0];
            assert_eq!(rx["requester"]["display"], gp);
            assert_eq!(stu3.of_patient(Kind::MedicationRequest, i)[0]["requester"]["agent"]["display"], gp);
            let order = &dstu2.of_patient(Kind::MedicationOrder, i)[0];
            assert_eq!(order["prescriber"]["display"], gp);
            assert_eq!(order["dateWritten"], rx["authoredOn"]);
        }
    }

    /// The realistic imperfections and variants are all there in the default
    /// patients, so the validation of their resources covers every shape.
    #[test]
    fn the_default_patients_show_every_variant() {
        let data = Dataset::new(Version::R4, data::PATIENT_COUNT);
        let all = |kind| data.all(kind, None).into_iter().map(Cow::into_owned).collect::<Vec<_>>();
        let some = |list: &[Value], what: &str, test: &dyn Fn(&Value) -> bool| {
            let n = list.iter().filter(|r| test(r)).count();
            assert!(n > 0 && n < list.len(), "{what}: {n} of {}", list.len());
        };
        some(&all(Kind::Patient), "two names", &|p| p["name"].as_array().unwrap().len() == 2);
        some(&all(Kind::Observation), "effectivePeriod", &|o| o.get("effectivePeriod").is_some());
        some(&all(Kind::Observation), "components", &|o| o.get("component").is_some());
        some(&all(Kind::Condition), "severity", &|c| c.get("severity").is_some());
        some(&all(Kind::Condition), "resolved", &|c| c.get("abatementDateTime").is_some());
        let encounters = all(Kind::Encounter);
        some(&encounters, "location display", &|e| e["location"][0]["location"].get("display").is_some());
        some(&encounters, "in progress", &|e| e["status"] == "in-progress");
        let allergies = all(Kind::AllergyIntolerance);
        some(&allergies, "note", &|a| a.get("note").is_some());
        some(&allergies, "reaction", &|a| a.get("reaction").is_some());
        some(&allergies, "reaction severity", &|a| a["reaction"][0].get("severity").is_some());
        let prescriptions = all(Kind::MedicationRequest);
        some(&prescriptions, "by reference", &|m| m.get("medicationReference").is_some());
        some(&prescriptions, "ended", &|m| m.get("dispenseRequest").is_some());
        let statements = all(Kind::MedicationStatement);
        some(&statements, "effective period", &|s| s.get("effectivePeriod").is_some());
        some(&statements, "text only", &|s| s["medicationCodeableConcept"].get("coding").is_none());
        let patients_with_statements = statements.len();
        assert!((10..50).contains(&patients_with_statements), "{patients_with_statements}");
        some(&all(Kind::Coverage), "open-ended", &|c| c["period"].get("end").is_none());
        let no_allergy = (0..data::PATIENT_COUNT).filter(|&i| data.of_patient(Kind::AllergyIntolerance, i).is_empty());
        assert!(no_allergy.count() > 0);
    }
}
