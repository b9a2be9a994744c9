//! Response shaping cost: the default shaping module in its WebAssembly
//! component against the same shaping code compiled natively (the baseline),
//! measured in the same run on a ~170 KB R4 searchset of Patients, a ~2 KB R4
//! Patient (the shaper's own test fixture: narrative, extensions, contacts)
//! and a ~1 KB demo Patient, shaped for the STU3 and the DSTU2 face. Two guest figures: a
//! warm instance called repeatedly (the module's own speed), and a fresh
//! instance per call, as the gateway runs it (instantiation included).
//!
//! Run with `cargo build-guests && cargo bench -p fhirgate --bench shaping`.

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{measure_interleaved, us};
use fhirgate_devtools::demo::data::patients_n;
use fhirgate_guest_sdk::types::{FhirVersion, Interaction};
use fhirgate_sandbox::bindings::shaping as host;
use fhirgate_sandbox::bindings::types::{FhirVersion as HostVersion, Interaction as HostInteraction};
use fhirgate_sandbox::harness::Harness;
use fhirgate_shaper_fhir::wit as guest;
use serde_json::Value;

const UPSTREAM: &str = "http://hospital.example/fhir";
const GATEWAY: &str = "http://gateway.example";

fn searchset(n: usize) -> Value {
    common::searchset(UPSTREAM, n)
}

fn main() -> anyhow::Result<()> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let wasm = target.join("wasm32-wasip2/guest/fhirgate_shaper_fhir.wasm");
    anyhow::ensure!(wasm.exists(), "{} is missing: run `cargo build-guests` first", wasm.display());
    let harness = Harness::load(&wasm)?;

    // The first patients count that makes a ~170 KB searchset.
    let mut n = 50;
    let mut big = serde_json::to_vec(&searchset(n))?;
    while big.len() < 170 * 1024 {
        n += 5;
        big = serde_json::to_vec(&searchset(n))?;
    }
    let fixture: Value =
        serde_json::from_slice(include_bytes!("../../../guest/shaper-fhir/tests/fixtures/r4/Patient.json"))?;
    let patient = serde_json::to_vec(&fixture)?;
    let small = serde_json::to_vec(&patients_n(1)[0])?;

    println!("response shaping, R4 provider (median per call)");
    println!("{:<44} {:>10} {:>10} {:>7} {:>12} {:>7}", "", "native µs", "warm µs", "ratio", "per-call µs", "ratio");
    let mut warm_shaper = harness.warm_shaper()?;
    for (face, host_face, guest_face) in
        [("STU3", HostVersion::Stu3, FhirVersion::Stu3), ("DSTU2", HostVersion::Dstu2, FhirVersion::Dstu2)]
    {
        let guest_exchange = |interaction| guest::Exchange {
            client_version: guest_face,
            upstream_version: FhirVersion::R4,
            interaction,
            gateway_base: format!("{GATEWAY}/{}", face.to_lowercase()),
            upstream_base: UPSTREAM.into(),
        };
        let host_exchange = |interaction| host::Exchange {
            client_version: host_face,
            upstream_version: HostVersion::R4,
            interaction,
            gateway_base: format!("{GATEWAY}/{}", face.to_lowercase()),
            upstream_base: UPSTREAM.into(),
        };
        for (label, body, interaction, host_interaction, batch) in [
            (
                format!("{:.0} KB searchset ({n} Patients) → {face}", big.len() as f64 / 1024.0),
                &big,
                Interaction::Search,
                HostInteraction::Search,
                10,
            ),
            (
                format!("{:.1} KB Patient → {face}", patient.len() as f64 / 1024.0),
                &patient,
                Interaction::Read,
                HostInteraction::Read,
                200,
            ),
            (
                format!("{:.1} KB demo Patient → {face}", small.len() as f64 / 1024.0),
                &small,
                Interaction::Read,
                HostInteraction::Read,
                200,
            ),
        ] {
            let (ge, he) = (guest_exchange(interaction), host_exchange(host_interaction));
            // Both must agree before their speed is compared.
            let native_out =
                fhirgate_shaper_fhir::response::shape(&ge, 200, body).map_err(|d| anyhow::anyhow!(d.message))?;
            let guest_out = harness.shape_response(&he, 200, body)?.map_err(|d| anyhow::anyhow!(d.message))?;
            anyhow::ensure!(native_out.body == guest_out.body, "the module and the native code disagree on {label}");

            let [native, warm, fresh] = measure_interleaved(
                batch,
                31,
                &mut [
                    &mut || {
                        black_box(fhirgate_shaper_fhir::response::shape(&ge, 200, black_box(body)).ok());
                    },
                    &mut || {
                        black_box(warm_shaper.shape_response(&he, 200, black_box(body)).ok());
                    },
                    &mut || {
                        black_box(harness.shape_response(&he, 200, black_box(body)).ok());
                    },
                ],
            );
            let ratio = |d: Duration| d.as_secs_f64() / native.as_secs_f64();
            println!(
                "{label:<44} {:>10.1} {:>10.1} {:>6.2}× {:>12.1} {:>6.2}×",
                us(native),
                us(warm),
                ratio(warm),
                us(fresh),
                ratio(fresh)
            );
        }
    }
    println!("target: warm instance ≤ 1.30× native");
    Ok(())
}
