//! AF_XDP UMEM: XDP_UMEM_REG long-term pins the user buffer for the NIC with
//! `pin_user_pages(FOLL_WRITE|FOLL_LONGTERM)` (net/xdp/xdp_umem.c, all of 6.1-7.2), and closing
//! the socket unpins it with `unpin_user_pages_dirty_lock`. No NIC is needed: registration alone
//! pins.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{Context, Result};

use crate::sys::{self, DEFAULT_PAGES, Mapping};

const AF_XDP: libc::c_int = 44;
const SOL_XDP: libc::c_int = 283;
const XDP_UMEM_REG: libc::c_int = 4;
const CHUNK_SIZE: u32 = 4096;

/// struct xdp_umem_reg (uapi/linux/if_xdp.h). 6.1's version ends at `flags`; its padding makes
/// it the same 32 bytes, and the kernel copies min(optlen, its size), so one layout fits all.
#[repr(C)]
struct XdpUmemReg {
    addr: u64,
    len: u64,
    chunk_size: u32,
    headroom: u32,
    flags: u32,
    tx_metadata_len: u32,
}

const _: () = assert!(size_of::<XdpUmemReg>() == 32);

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// UMEM size in 4 KiB pages.
    #[arg(long, default_value_t = DEFAULT_PAGES)]
    pub pages: usize,
}

pub fn run(args: &Args) -> Result<String> {
    let Some(socket) = xdp_socket()? else {
        return Ok("unavailable (no AF_XDP)".into());
    };
    let umem = Mapping::anon(sys::pages_len(args.pages)?)?;
    umem.write_pages(0x5a);
    register(&socket, &umem).context("setsockopt(SOL_XDP, XDP_UMEM_REG)")?;
    // Closing the socket releases the UMEM and unpins its pages.
    drop(socket);
    umem.unmap()?;
    Ok(format!("ok registered+released {} pages", args.pages))
}

/// `None` when the kernel has no AF_XDP (CONFIG_XDP_SOCKETS off).
fn xdp_socket() -> Result<Option<OwnedFd>> {
    // SAFETY: socket() takes no pointers; the result is checked before use.
    let fd = unsafe { libc::socket(AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EAFNOSUPPORT) {
            return Ok(None);
        }
        return Err(err).context("socket(AF_XDP, SOCK_RAW)");
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
}

fn register(socket: &OwnedFd, umem: &Mapping) -> io::Result<()> {
    let reg = XdpUmemReg {
        addr: umem.addr() as u64,
        len: umem.len() as u64,
        chunk_size: CHUNK_SIZE,
        headroom: 0,
        flags: 0,
        tx_metadata_len: 0,
    };
    // SAFETY: `reg` is a valid, initialised struct of the size passed, alive for the call.
    let ret = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            SOL_XDP,
            XDP_UMEM_REG,
            (&raw const reg).cast(),
            size_of::<XdpUmemReg>() as libc::socklen_t,
        )
    };
    sys::cvt(ret).map(drop)
}
