//! Tests only: an io_uring ring with one registered buffer, held by the test process, so the
//! scan can be checked against the real /proc of the kernel it runs on.

use std::os::fd::{FromRawFd as _, OwnedFd};

/// A ring with `pages` pages registered; both released on drop (fd closed, buffer unmapped).
pub struct Held {
    _ring: OwnedFd,
    buf: *mut libc::c_void,
    len: usize,
}

impl Held {
    /// `None` where io_uring is unavailable (disabled by sysctl, seccomp, an old kernel).
    pub fn new(pages: usize) -> Option<Self> {
        let len = pages * 4096;
        let mut params = [0u8; 120];
        // SAFETY: io_uring_setup reads and writes a 120-byte struct io_uring_params.
        let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
        if fd < 0 {
            return None;
        }
        // SAFETY: the fd was just returned to us and is owned here alone.
        let ring = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // SAFETY: a fresh private anonymous mapping, unmapped in Drop.
        let buf = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        assert_ne!(buf, libc::MAP_FAILED);
        let iov = libc::iovec {
            iov_base: buf,
            iov_len: len,
        };
        // SAFETY: IORING_REGISTER_BUFFERS (0) reads one iovec describing the mapping above.
        let ret = unsafe { libc::syscall(libc::SYS_io_uring_register, fd, 0u32, &iov, 1u32) };
        let held = Self {
            _ring: ring,
            buf,
            len,
        };
        (ret == 0).then_some(held)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`; the ring fd closes after (field drop order does
        // not matter: the kernel keeps its pages pinned until the ring is freed).
        unsafe { libc::munmap(self.buf, self.len) };
    }
}
