//! Where a kernel fact is found in BTF: the sources `probe_common::kernel_facts!` names.

use super::btf::KernelBtf;

/// How one fact of the table is read from the kernel's BTF.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// Byte offset of the first of `fields` that `strukt` has: a field renamed by a later
    /// kernel is listed after the name it replaced.
    Member {
        strukt: &'static str,
        fields: &'static [&'static str],
    },
    /// Value of an enumerator, in whichever enum declares it.
    Enumerator(&'static str),
    /// `sizeof` a struct.
    SizeOf(&'static str),
    /// The position paired with the first of these functions BTF has (an argument's index in
    /// its prototype).
    ArgOf(&'static [(&'static str, u32)]),
    /// A resolver of its own, for a fact no source above can state.
    Special(fn(&KernelBtf) -> Option<u32>),
}

impl Source {
    pub fn resolve(&self, btf: &KernelBtf) -> Option<u32> {
        match *self {
            Self::Member { strukt, fields } => fields
                .iter()
                .find_map(|field| btf.member_offset(strukt, field)),
            Self::Enumerator(name) => btf.enum_value(name).and_then(|v| u32::try_from(v).ok()),
            Self::SizeOf(strukt) => btf.struct_size(strukt),
            Self::ArgOf(functions) => functions
                .iter()
                .find(|(function, _)| btf.has_function(function))
                .map(|(_, position)| *position),
            Self::Special(resolve) => resolve(btf),
        }
    }
}

/// The [`Source`] a table entry's `source(arguments)` tokens name.
macro_rules! source {
    (member($strukt:literal, $($field:literal)|+)) => {
        $crate::kernel::source::Source::Member {
            strukt: $strukt,
            fields: &[$($field),+],
        }
    };
    (enumerator($name:literal)) => {
        $crate::kernel::source::Source::Enumerator($name)
    };
    (size_of($strukt:literal)) => {
        $crate::kernel::source::Source::SizeOf($strukt)
    };
    (arg_of($($function:literal => $position:literal),+)) => {
        $crate::kernel::source::Source::ArgOf(&[$(($function, $position)),+])
    };
    (special($resolver:ident)) => {
        $crate::kernel::source::Source::Special($crate::kernel::source::$resolver)
    };
}
pub(crate) use source;

/// `folio._pincount` exists from 6.2 on (and as a folio alias on 6.1 Debian); older kernels keep
/// the count in the first tail page as `page.compound_pincount`, i.e. one `struct page` further.
pub fn folio_pincount(btf: &KernelBtf) -> Option<u32> {
    btf.member_offset("folio", "_pincount").or_else(|| {
        let in_tail = btf.member_offset("page", "compound_pincount")?;
        Some(btf.struct_size("page")? + in_tail)
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::kernel::btf::VMLINUX_BTF;

    /// Against the running kernel's BTF (skipped where there is none): the first candidate the
    /// kernel has wins, and none gives no value.
    #[test]
    fn the_first_candidate_the_kernel_has_wins() {
        let Ok(btf) = KernelBtf::load(Path::new(VMLINUX_BTF)) else {
            eprintln!("skipped: no readable {VMLINUX_BTF}");
            return;
        };
        let flags = source!(member("folio", "flags")).resolve(&btf);
        assert!(flags.is_some());
        let renamed = source!(member("folio", "no_such_field" | "flags"));
        assert_eq!(renamed.resolve(&btf), flags);
        assert_eq!(
            source!(member("folio", "no_such_field")).resolve(&btf),
            None
        );
        let ladder = source!(arg_of("no_such_function" => 3, "schedule" => 7));
        assert_eq!(ladder.resolve(&btf), Some(7));
        assert_eq!(source!(arg_of("no_such_function" => 3)).resolve(&btf), None);
        assert_eq!(
            source!(size_of("page")).resolve(&btf),
            btf.struct_size("page")
        );
        assert_eq!(
            source!(enumerator("NO_SUCH_ENUMERATOR")).resolve(&btf),
            None
        );
        assert!(source!(special(folio_pincount)).resolve(&btf).is_some());
    }
}
