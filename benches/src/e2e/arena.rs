//! [`Arena`]: one anonymous mapping whose pages the harness charges to its cgroup by touching
//! them and uncharges with `MADV_DONTNEED`, so usage moves by exact, page-sized amounts
//! (no allocator in between, no transparent huge pages).
#![allow(unsafe_code)]

use std::io;
use std::ops::Range;
use std::ptr::NonNull;

use super::cgroup::BenchCgroup;
use super::{bail, Error, Result};

/// The page size (4 KiB on x86-64; read once from `sysconf`).
pub fn page_size() -> usize {
    // SAFETY: sysconf takes no pointers and has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|n| *n > 0).unwrap_or(4096)
}

/// A private anonymous mapping of `len` bytes, reserved but not charged until touched.
#[derive(Debug)]
pub struct Arena {
    ptr: NonNull<u8>,
    len: usize,
    page: usize,
}

// SAFETY: the arena owns its mapping exclusively; nothing in it is tied to a thread.
unsafe impl Send for Arena {}

impl Arena {
    /// Reserve `len` bytes (rounded up to pages), with huge pages disabled so that each touch
    /// charges exactly one page.
    ///
    /// # Errors
    /// The kernel's error from `mmap`.
    pub fn new(len: usize) -> io::Result<Arena> {
        let page = page_size();
        let len = len.div_ceil(page).max(1) * page;
        // SAFETY: a fresh anonymous mapping at an address of the kernel's choice: no existing
        // memory is affected; the result is checked against MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let arena = Arena { ptr: NonNull::new(p.cast()).ok_or_else(io::Error::last_os_error)?, len, page };
        // SAFETY: the range is exactly the mapping created above. A kernel without THP refuses
        // the advice (EINVAL), and then has no huge pages to avoid: the result is ignored.
        let _ = unsafe { libc::madvise(p, len, libc::MADV_NOHUGEPAGE) };
        Ok(arena)
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true (an arena has at least one page); for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn pages(&self, range: Range<usize>) -> Range<usize> {
        let start = (range.start / self.page * self.page).min(self.len);
        let end = (range.end.div_ceil(self.page) * self.page).clamp(start, self.len);
        start..end
    }

    /// Write one byte in every page of `range` (clamped to the arena): each first write faults
    /// in, and charges, one page.
    pub fn touch(&mut self, range: Range<usize>) {
        let r = self.pages(range);
        let mut off = r.start;
        while off < r.end {
            // SAFETY: `off < self.len`, so the pointer stays inside the live, writable mapping
            // this arena owns exclusively (`&mut self`).
            unsafe { self.ptr.as_ptr().add(off).write_volatile(1) };
            off += self.page;
        }
    }

    /// Drop the pages of `range` (clamped to the arena): they return to the kernel and are
    /// uncharged at once; the next touch faults in zeroed pages.
    ///
    /// # Errors
    /// The kernel's error from `madvise`.
    pub fn release(&mut self, range: Range<usize>) -> io::Result<()> {
        let r = self.pages(range);
        if r.is_empty() {
            return Ok(());
        }
        // SAFETY: `r` is page-aligned and inside the mapping this arena owns; no reference into
        // the mapping outlives this call (the arena hands none out).
        let rc = unsafe { libc::madvise(self.ptr.as_ptr().add(r.start).cast(), r.len(), libc::MADV_DONTNEED) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping created in `new`, once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Anonymous memory parked at a target usage, plus a crossing region right after it.
pub struct Ballast {
    arena: Arena,
    len: usize,
}

impl Ballast {
    pub fn new(max: u64) -> Result<Ballast> {
        let max = usize::try_from(max).map_err(|_| Error("ballast size overflows usize".into()))?;
        Ok(Ballast { arena: Arena::new(max).map_err(|e| Error(format!("mmap: {e}")))?, len: 0 })
    }

    /// Grow or shrink the touched prefix until the cgroup's usage is within `tolerance` of
    /// `target`; returns the usage reached.
    pub fn park(&mut self, cg: &BenchCgroup, target: u64, tolerance: u64) -> Result<u64> {
        let mut usage = cg.usage()?;
        for _ in 0..16 {
            if usage.abs_diff(target) <= tolerance {
                return Ok(usage);
            }
            let delta = usize::try_from(usage.abs_diff(target)).unwrap_or(usize::MAX);
            if usage < target {
                let end = self.len.saturating_add(delta).min(self.arena.len());
                self.arena.touch(self.len..end);
                self.len = end;
            } else {
                if self.len == 0 {
                    bail!("usage {usage} is above the parking target {target} with no ballast left");
                }
                let start = self.len.saturating_sub(delta);
                self.arena.release(start..self.len).map_err(|e| Error(format!("madvise: {e}")))?;
                self.len = start;
            }
            usage = cg.usage()?;
        }
        if usage.abs_diff(target) <= 2 * tolerance {
            return Ok(usage);
        }
        bail!("could not park usage at {target} (±{tolerance}): {usage}")
    }

    /// Bytes touched (the parked prefix).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Nothing touched.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn cross(&mut self, bytes: usize) {
        self.arena.touch(self.len..self.len.saturating_add(bytes));
    }

    pub fn uncross(&mut self, bytes: usize) -> Result<()> {
        self.arena.release(self.len..self.len.saturating_add(bytes)).map_err(|e| Error(format!("madvise: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touch_and_release_are_clamped_and_page_aligned() {
        let page = page_size();
        let mut a = Arena::new(3 * page + 1).expect("mmap");
        assert_eq!(a.len(), 4 * page);
        assert_eq!(a.pages(1..page + 1), 0..2 * page);
        assert_eq!(a.pages(0..100 * page), 0..4 * page);
        assert!(a.pages(10 * page..20 * page).is_empty());
        a.touch(0..a.len());
        a.release(page..3 * page).expect("madvise");
        a.release(10 * page..11 * page).expect("empty range");
    }
}
