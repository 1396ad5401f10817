//! The benchmark's comparison: a bpftrace script that attaches the kernel functions and
//! tracepoints pinwatch attached on this kernel, with the same kind of probe, and only counts
//! calls. Read from `pinwatch doctor --json` on stdin, written to stdout.

use std::io::Read as _;

use anyhow::{Context, Result, bail};
use serde_json::Value;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {}

pub fn run(_args: &Args) -> Result<String> {
    let mut doctor = String::new();
    std::io::stdin()
        .read_to_string(&mut doctor)
        .context("reading pinwatch doctor --json from stdin")?;
    let doctor: Value = serde_json::from_str(&doctor).context("stdin is not doctor's JSON")?;
    let probes = probes(&doctor)?;
    for probe in &probes {
        println!("{probe} {{ @[probe] = count(); }}");
    }
    Ok(format!("ok {} probes", probes.len()))
}

/// One bpftrace probe per attached program of doctor's hook table, in its order.
fn probes(doctor: &Value) -> Result<Vec<String>> {
    let Some(hooks) = doctor["hooks"].as_array() else {
        bail!("doctor's JSON has no `hooks` array");
    };
    let mut probes = Vec::new();
    for hook in hooks.iter().filter(|h| h["attached"] == true) {
        let symbol = hook["symbol"]
            .as_str()
            .context("an attached hook has no symbol")?;
        // A hook attached by its return program alone (fexit) has no entry method.
        match hook["method"].as_str() {
            None if !hook["return_method"].is_null() => {}
            Some("fentry") => probes.push(format!("kfunc:{symbol}")),
            Some("kprobe") => probes.push(format!("kprobe:{symbol}")),
            // bpftrace 0.17 has no raw tracepoints: the tracepoint is the nearest probe.
            Some("raw-tracepoint" | "tracepoint") => probes.push(format!("tracepoint:{symbol}")),
            other => bail!("hook {symbol}: unknown attach method {other:?}"),
        }
        // pinwatch names the return side by the entry's method family.
        match hook["return_method"].as_str() {
            None => {}
            Some("fentry") => probes.push(format!("kretfunc:{symbol}")),
            Some("kprobe") => probes.push(format!("kretprobe:{symbol}")),
            Some(other) => bail!("hook {symbol}: unknown return method `{other}`"),
        }
    }
    if probes.is_empty() {
        bail!("doctor reports no attached hook: nothing to compare with");
    }
    Ok(probes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_attached_program_becomes_the_same_kind_of_probe() {
        let doctor = serde_json::json!({"hooks": [
            {"symbol": "do_wp_page", "attached": true, "method": "fentry", "return_method": "fentry"},
            {"symbol": "pin_user_pages_remote", "attached": true, "method": "kprobe", "return_method": "kprobe"},
            {"symbol": "pin_user_pages_fast", "attached": true, "method": null, "return_method": "fentry"},
            {"symbol": "folio_mkclean", "attached": true, "method": "fentry", "return_method": null},
            {"symbol": "sched:sched_process_fork", "attached": true, "method": "raw-tracepoint", "return_method": null},
            {"symbol": null, "attached": false, "method": null, "return_method": null},
        ]});
        assert_eq!(
            probes(&doctor).expect("valid"),
            vec![
                "kfunc:do_wp_page",
                "kretfunc:do_wp_page",
                "kprobe:pin_user_pages_remote",
                "kretprobe:pin_user_pages_remote",
                "kretfunc:pin_user_pages_fast",
                "kfunc:folio_mkclean",
                "tracepoint:sched:sched_process_fork",
            ]
        );
    }

    #[test]
    fn nothing_attached_or_not_doctor_json_is_an_error() {
        assert!(probes(&serde_json::json!({"hooks": []})).is_err());
        assert!(probes(&serde_json::json!({"kernel": "6.1"})).is_err());
    }
}
