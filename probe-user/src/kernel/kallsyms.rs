//! Kernel symbol lookup with compiler clones: GCC renames specialised copies of static functions
//! (`pci_mmap_resource.isra.0`, `memtype_free.part.0`), and a probe must target the real name.

use std::collections::HashMap;

/// One text symbol from `/proc/kallsyms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    /// The name to attach to, clone suffix included.
    pub name: String,
    /// `None` for vmlinux, `Some("vfio_iommu_type1")` for a module.
    pub module: Option<String>,
    /// Whether ftrace can trace it (listed in `available_filter_functions`); `None` if unknown.
    pub traceable: Option<bool>,
}

/// Text symbols indexed by their name without clone suffixes, and by address for symbolizing
/// kernel stacks.
#[derive(Debug, Default)]
pub struct Kallsyms {
    /// For attaching; a long-running process drops it once attached.
    by_base: HashMap<String, Vec<Symbol>>,
    /// Every text symbol's name, back to back: one allocation instead of one per symbol (a
    /// kernel has 100k of them, and the daemon keeps them for its whole life).
    names: String,
    /// (address, start and end of the name in `names`), sorted by address; empty when
    /// addresses are hidden (kptr_restrict).
    by_addr: Vec<(u64, u32, u32)>,
}

/// Larger than any kernel function worth naming; farther than this from a symbol is "unknown".
const MAX_FUNCTION_SIZE: u64 = 64 * 1024;

/// Suffixes GCC appends to specialised clones. `.cold` parts are not function entries.
const CLONE_MARKERS: [&str; 4] = [".isra.", ".constprop.", ".part.", ".llvm."];

impl Kallsyms {
    /// Reads `/proc/kallsyms` and, when tracefs is mounted, `available_filter_functions`.
    pub fn read() -> std::io::Result<Self> {
        let text = std::fs::read_to_string("/proc/kallsyms")?;
        let traceable = read_filter_functions();
        Ok(Self::parse(&text, traceable.as_deref()))
    }

    /// Parses kallsyms text; `filter_functions` is the text of `available_filter_functions`.
    pub fn parse(kallsyms: &str, filter_functions: Option<&str>) -> Self {
        let traceable: Option<std::collections::HashSet<&str>> = filter_functions.map(|t| {
            t.lines()
                .filter_map(|l| l.split_whitespace().next())
                .collect()
        });
        let mut by_base: HashMap<String, Vec<Symbol>> = HashMap::new();
        let mut by_addr = Vec::new();
        let mut names = String::new();
        for line in kallsyms.lines() {
            let mut fields = line.split_whitespace();
            let (Some(addr), Some(kind), Some(name)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            // Zero addresses mean kptr_restrict hides them: no symbolization then.
            if let Ok(addr) = u64::from_str_radix(addr, 16)
                && addr != 0
                && matches!(kind, "t" | "T")
                && let (Ok(start), Ok(end)) = (
                    u32::try_from(names.len()),
                    u32::try_from(names.len() + name.len()),
                )
            {
                names.push_str(name);
                by_addr.push((addr, start, end));
            }
            if !matches!(kind, "t" | "T") || name.ends_with(".cold") || name.contains(".cold.") {
                continue;
            }
            let module = fields.next().map(|m| m.trim_matches(['[', ']']).to_owned());
            let symbol = Symbol {
                name: name.to_owned(),
                module,
                traceable: traceable.as_ref().map(|set| set.contains(name)),
            };
            by_base
                .entry(base_name(name).to_owned())
                .or_default()
                .push(symbol);
        }
        by_addr.sort_unstable();
        names.shrink_to_fit();
        by_addr.shrink_to_fit();
        Self {
            by_base,
            names,
            by_addr,
        }
    }

    /// Keeps only what symbolizing stacks needs: a daemon resolves symbols once, at attach.
    pub fn drop_attach_index(&mut self) {
        self.by_base = HashMap::new();
    }

    /// The function containing `addr`, for kernel stack frames. kallsyms has no sizes, so an
    /// address far past the nearest symbol is not attributed to it: BPF trampolines and JIT
    /// images (ours, loaded after kallsyms was read) sit in the module area with no symbol, and
    /// must not borrow the name of a module function below them.
    pub fn symbolize(&self, addr: u64) -> Option<&str> {
        let idx = self.by_addr.partition_point(|(a, _, _)| *a <= addr);
        let &(start, from, to) = self.by_addr.get(idx.checked_sub(1)?)?;
        (addr - start < MAX_FUNCTION_SIZE)
            .then(|| self.names.get(from as usize..to as usize))
            .flatten()
    }

    /// The symbol to attach to for `wanted`: the exact name if present, else its first clone.
    pub fn resolve(&self, wanted: &str) -> Option<&Symbol> {
        let all = self.by_base.get(wanted)?;
        all.iter()
            .find(|s| s.name == wanted)
            .or_else(|| all.first())
    }

    /// First candidate of an ordered ladder that the kernel has.
    pub fn resolve_first<'a>(&self, candidates: &[&'a str]) -> Option<(&'a str, &Symbol)> {
        candidates
            .iter()
            .find_map(|c| self.resolve(c).map(|s| (*c, s)))
    }
}

/// `foo.isra.0` → `foo`; `foo` → `foo`.
pub fn base_name(name: &str) -> &str {
    CLONE_MARKERS
        .iter()
        .filter_map(|m| name.find(m))
        .min()
        .map_or(name, |cut| &name[..cut])
}

fn read_filter_functions() -> Option<String> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .find_map(|dir| std::fs::read_to_string(format!("{dir}/available_filter_functions")).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
ffffffff81001000 T folio_mkclean
ffffffff81002000 t pci_mmap_resource.isra.0
ffffffff81003000 t gup_must_unshare.part.0
ffffffff81004000 t do_wp_page
ffffffff81005000 t do_wp_page.cold
ffffffff81006000 D vmemmap_base
ffffffff81007000 t memtype_free.part.0
ffffffff81008000 T memtype_free
ffffffffc0001000 t vaddr_get_pfns\t[vfio_iommu_type1]
";

    #[test]
    fn clone_suffixes_resolve_to_the_clone() {
        let k = Kallsyms::parse(SAMPLE, None);
        assert_eq!(
            k.resolve("pci_mmap_resource").unwrap().name,
            "pci_mmap_resource.isra.0"
        );
        assert_eq!(
            k.resolve("gup_must_unshare").unwrap().name,
            "gup_must_unshare.part.0"
        );
    }

    #[test]
    fn exact_name_wins_over_a_clone() {
        let k = Kallsyms::parse(SAMPLE, None);
        assert_eq!(k.resolve("memtype_free").unwrap().name, "memtype_free");
    }

    #[test]
    fn cold_parts_and_data_symbols_are_not_functions() {
        let k = Kallsyms::parse(SAMPLE, None);
        assert_eq!(k.resolve("do_wp_page").unwrap().name, "do_wp_page");
        assert!(k.resolve("do_wp_page.cold").is_none());
        assert!(k.resolve("vmemmap_base").is_none());
    }

    #[test]
    fn module_symbols_carry_their_module() {
        let k = Kallsyms::parse(SAMPLE, None);
        assert_eq!(
            k.resolve("vaddr_get_pfns").unwrap().module.as_deref(),
            Some("vfio_iommu_type1")
        );
    }

    #[test]
    fn ladder_takes_the_first_candidate_present() {
        let k = Kallsyms::parse(SAMPLE, None);
        let (wanted, sym) = k.resolve_first(&["pfnmap_untrack", "do_wp_page"]).unwrap();
        assert_eq!((wanted, sym.name.as_str()), ("do_wp_page", "do_wp_page"));
        assert!(
            k.resolve_first(&["pfnmap_untrack", "untrack_pfn"])
                .is_none()
        );
    }

    #[test]
    fn notrace_functions_are_marked() {
        let k = Kallsyms::parse(SAMPLE, Some("folio_mkclean\ndo_wp_page\n"));
        assert_eq!(k.resolve("folio_mkclean").unwrap().traceable, Some(true));
        assert_eq!(
            k.resolve("gup_must_unshare").unwrap().traceable,
            Some(false)
        );
    }

    #[test]
    fn addresses_symbolize_to_the_enclosing_function() {
        let k = Kallsyms::parse(SAMPLE, None);
        assert_eq!(k.symbolize(0xffffffff81004010), Some("do_wp_page"));
        assert_eq!(k.symbolize(0xffffffffc0001004), Some("vaddr_get_pfns"));
        assert_eq!(k.symbolize(0x1000), None);
        assert_eq!(
            k.symbolize(0xffffffffc0001004 + 0x100000),
            None,
            "far past the last symbol: a JIT image"
        );
    }

    #[test]
    fn base_name_strips_every_clone_marker() {
        assert_eq!(
            base_name("process_vm_rw_core.constprop.0"),
            "process_vm_rw_core"
        );
        assert_eq!(base_name("a.isra.0.part.1"), "a");
        assert_eq!(base_name("plain"), "plain");
    }
}
