//! The pins-inventory pass: an io_uring pin (`PAGES` pages registered) taken before any
//! pinwatch runs, then `pinwatch pins --json` (xtask/guest/init.sh). The inventory, read from
//! /proc alone, must list the holder with pinner io_uring and exactly the registered pages, on
//! every kernel (6.1, 6.12 and 7.2 each print fdinfo's buffer table in their own way); once the
//! holder has exited, it must be gone (the negative control).

use serde_json::Value;

use super::result;
use crate::expect::Kernel;

/// Pages the guest's holder registers (`pinwatch-workload iouring --pages 37`).
pub const PAGES: u64 = 37;

pub fn check(kernel: &Kernel, output: &str, fails: &mut Vec<String>) {
    let k = kernel.name;
    match inventory(output, "pins-held") {
        Err(e) => fails.push(format!("{k} {e}")),
        Ok((holder, inv)) => {
            let got = held_by(&inv, holder);
            if got != vec![("io_uring".to_owned(), "fdinfo".to_owned(), PAGES, true)] {
                fails.push(format!(
                    "{k} pins-held: holder {holder} listed with {got:?} (expected io_uring from fdinfo, exactly {PAGES} pages)"
                ));
            }
            if io_uring_total(&inv) != PAGES {
                fails.push(format!(
                    "{k} pins-held: io_uring total {} pages (expected {PAGES})",
                    io_uring_total(&inv)
                ));
            }
        }
    }
    match inventory(output, "pins-released") {
        Err(e) => fails.push(format!("{k} {e}")),
        Ok((holder, inv)) => {
            let got = held_by(&inv, holder);
            if !got.is_empty() || io_uring_total(&inv) != 0 {
                fails.push(format!(
                    "{k} pins-released: holder {holder} exited but is still listed with {got:?}, io_uring total {}",
                    io_uring_total(&inv)
                ));
            }
        }
    }
}

/// `<exit code> holder=<pid> <json>` after the tag; the exit must be 0 (root reads everything).
fn inventory(output: &str, tag: &str) -> Result<(u64, Value), String> {
    let rest = result(output, tag).ok_or(format!("{tag}: no result"))?;
    let mut words = rest.splitn(3, ' ');
    let (code, holder, json) = (words.next(), words.next(), words.next().unwrap_or(""));
    let holder = holder
        .and_then(|h| h.strip_prefix("holder="))
        .and_then(|h| h.parse().ok())
        .ok_or(format!("{tag}: no holder pid in {rest:.80}"))?;
    let inv: Value =
        serde_json::from_str(json).map_err(|e| format!("{tag}: not JSON ({e}): {json:.200}"))?;
    if code != Some("0") || inv["complete"] != true || !inv["schema"].is_u64() {
        return Err(format!(
            "{tag}: exited {code:?}, complete={}, schema={} (expected 0, true, a number)",
            inv["complete"], inv["schema"]
        ));
    }
    Ok((holder, inv))
}

/// (pinner, source, pages, exact) of each holding of process `tgid`.
fn held_by(inv: &Value, tgid: u64) -> Vec<(String, String, u64, bool)> {
    let processes = inv["processes"].as_array().map_or(&[][..], Vec::as_slice);
    processes
        .iter()
        .filter(|p| p["tgid"].as_u64() == Some(tgid))
        .flat_map(|p| p["holdings"].as_array().into_iter().flatten())
        .map(|h| {
            (
                h["pinner"].as_str().unwrap_or("-").to_owned(),
                h["source"].as_str().unwrap_or("-").to_owned(),
                h["pages"].as_u64().unwrap_or(0),
                h["exact"] == true,
            )
        })
        .collect()
}

fn io_uring_total(inv: &Value) -> u64 {
    inv["pinners"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["pinner"] == "io_uring")
        .filter_map(|t| t["pages"].as_u64())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELD: &str = r#"{"schema":2,"complete":true,"processes":[{"tgid":412,"comm":"pinwatch-worklo","holdings":[{"pinner":"io_uring","source":"fdinfo","pages":37,"exact":true}]}],"pinners":[{"pinner":"io_uring","source":"fdinfo","pages":37,"processes":1,"exact":true}]}"#;
    const GONE: &str = r#"{"schema":2,"complete":true,"processes":[],"pinners":[]}"#;

    fn run(held: &str, released: &str) -> Vec<String> {
        let output = format!(
            "PINWATCH-RESULT pins-held 0 holder=412 {held}\nPINWATCH-RESULT pins-released 0 holder=412 {released}\n"
        );
        let mut fails = Vec::new();
        check(&crate::expect::KERNELS[0], &output, &mut fails);
        fails
    }

    #[test]
    fn the_holder_with_its_exact_pages_then_nothing_passes() {
        assert_eq!(run(HELD, GONE), Vec::<String>::new());
    }

    #[test]
    fn wrong_pages_a_missing_holder_or_a_lingering_one_fail() {
        assert_eq!(run(&HELD.replace("37", "36"), GONE).len(), 2);
        assert_eq!(run(&HELD.replace("412", "999"), GONE).len(), 1);
        assert_eq!(run(HELD, HELD).len(), 1);
        assert_eq!(
            run(
                &HELD.replace("\"complete\":true", "\"complete\":false"),
                GONE
            )
            .len(),
            1
        );
    }
}
