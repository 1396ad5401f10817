//! KVM's ioctls, as far as a guest_memfd needs them: /dev/kvm, an ordinary VM, and a
//! guest_memfd the host can mmap. No vCPU and no memslot: creating the memory needs neither.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

use anyhow::{Context as _, Result};

use crate::sys;
use crate::unsupported::Unsupported;

/// `_IO(KVMIO, 0x01)`, include/uapi/linux/kvm.h (KVMIO 0xAE).
const KVM_CREATE_VM: libc::c_ulong = 0xAE01;
/// `_IO(KVMIO, 0x03)`: on a VM fd, what the VM supports.
const KVM_CHECK_EXTENSION: libc::c_ulong = 0xAE03;
/// `_IOWR(KVMIO, 0xd4, struct kvm_create_guest_memfd)` (64 bytes), Debian 7.2.13
/// include/uapi/linux/kvm.h:1654.
const KVM_CREATE_GUEST_MEMFD: libc::c_ulong = 0xC040_AED4;
/// The flags a VM's guest_memfd accepts (KVM_CHECK_EXTENSION on the VM fd), kvm.h:994.
const KVM_CAP_GUEST_MEMFD_FLAGS: libc::c_ulong = 244;
/// arch/x86/include/uapi/asm/kvm.h: the ordinary VM type, the one 7.2 lets mmap guest_memfd.
const KVM_X86_DEFAULT_VM: libc::c_ulong = 0;

/// The host may mmap the guest_memfd (kvm.h:1655; 6.18+).
pub const GUEST_MEMFD_FLAG_MMAP: u64 = 1 << 0;
/// Its pages start shared with the host, so a host fault maps them instead of SIGBUS (kvm.h:1656).
pub const GUEST_MEMFD_FLAG_INIT_SHARED: u64 = 1 << 1;
/// guest_memfd's superblock magic, include/uapi/linux/magic.h:106 ("GMEM").
pub const GUEST_MEMFD_MAGIC: i64 = 0x474d_454d;

/// struct kvm_create_guest_memfd (uapi).
#[repr(C)]
struct CreateGuestMemfd {
    size: u64,
    flags: u64,
    reserved: [u64; 6],
}

const _: () = assert!(size_of::<CreateGuestMemfd>() == 64);

/// An ordinary (`KVM_X86_DEFAULT_VM`) VM with no vCPU.
pub struct Vm {
    fd: OwnedFd,
}

/// Opens /dev/kvm and creates a VM. A missing /dev/kvm means no KVM module for this CPU
/// (kvm_amd needs SVM in the guest's CPU model): unsupported, not a failure.
pub fn create_vm() -> Result<Vm> {
    let kvm: File = match OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Unsupported(
                "no /dev/kvm (kvm and kvm_amd or kvm_intel not loaded)".into(),
            )
            .into());
        }
        other => other.context("open /dev/kvm")?,
    };
    // SAFETY: KVM_CREATE_VM takes the machine type by value and reads no memory.
    let fd = sys::cvt(unsafe { libc::ioctl(kvm.as_raw_fd(), KVM_CREATE_VM, KVM_X86_DEFAULT_VM) })
        .context("KVM_CREATE_VM")?;
    // SAFETY: the kernel just returned this VM fd and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok(Vm { fd })
}

impl Vm {
    /// A guest_memfd of `len` bytes with `flags`. ENOTTY (no guest_memfd: 6.1, and 6.12 built
    /// without CONFIG_KVM_PRIVATE_MEM) and EINVAL for flags this VM lacks are unsupported.
    pub fn guest_memfd(&self, len: usize, flags: u64) -> Result<File> {
        let mut req = CreateGuestMemfd {
            size: u64::try_from(len)?,
            flags,
            reserved: [0; 6],
        };
        // SAFETY: req is a live kvm_create_guest_memfd of the size the ioctl number encodes.
        let ret = unsafe { libc::ioctl(self.fd.as_raw_fd(), KVM_CREATE_GUEST_MEMFD, &raw mut req) };
        match sys::cvt(ret) {
            Ok(fd) => {
                // SAFETY: the kernel just returned this fd and nothing else owns it.
                Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOTTY) => {
                Err(Unsupported("no guest_memfd (KVM_CREATE_GUEST_MEMFD: ENOTTY)".into()).into())
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Err(Unsupported(format!(
                "guest_memfd flags {flags:#x} refused (EINVAL); this VM accepts {:#x}",
                self.guest_memfd_flags()
            ))
            .into()),
            Err(e) => Err(anyhow::Error::new(e).context("KVM_CREATE_GUEST_MEMFD")),
        }
    }

    /// KVM_CAP_GUEST_MEMFD_FLAGS: the flags this VM's guest_memfd accepts (0 where the
    /// capability is unknown).
    fn guest_memfd_flags(&self) -> u64 {
        // SAFETY: KVM_CHECK_EXTENSION takes the capability by value and reads no memory.
        let ret = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                KVM_CHECK_EXTENSION,
                KVM_CAP_GUEST_MEMFD_FLAGS,
            )
        };
        u64::try_from(ret).unwrap_or(0)
    }
}

/// The superblock magic of the filesystem behind `file` (fstatfs).
pub fn fs_magic(file: &File) -> io::Result<i64> {
    // SAFETY: an all-zero statfs is a valid value for the kernel to overwrite.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: st is a live statfs the kernel fills in.
    sys::cvt(unsafe { libc::fstatfs(file.as_raw_fd(), &raw mut st) })?;
    Ok(st.f_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `_IOWR(type, nr, size)` = dir 3 << 30 | size << 16 | type << 8 | nr.
    #[test]
    fn ioctl_numbers_follow_the_uapi_encoding() {
        let iowr = |ty: libc::c_ulong, nr: libc::c_ulong, size: usize| {
            (3 << 30) | ((size as libc::c_ulong) << 16) | (ty << 8) | nr
        };
        assert_eq!(
            KVM_CREATE_GUEST_MEMFD,
            iowr(0xAE, 0xd4, size_of::<CreateGuestMemfd>())
        );
    }
}
