//! A per-call arena allocator for modules.
//!
//! A module call builds many small, short-lived values (a JSON document's
//! strings and maps) and frees them all before it returns. A general-purpose
//! allocator pays for bookkeeping on each of them; [`CallArena`] instead bumps
//! a pointer through chunks it takes from a backing allocator, never reuses a
//! freed block within a call, and starts again from the beginning of its
//! newest chunk once every block it handed out has been freed (which happens
//! between calls: the host frees a call's results before the next one).
//!
//! It stays bounded: blocks of [`CallArena::LARGE`] bytes or more (bodies,
//! large buffers) and everything beyond [`CallArena::LIMIT`] bytes of chunks
//! come from the backing allocator, which frees and reuses them as usual.
//! Space freed during a call is reused only after the call, so a call holds
//! up to `LIMIT` bytes more than it would with the backing allocator alone.
//! A value a module keeps across calls (a parsed configuration in a static)
//! keeps the arena from ever starting over: it then fills up to its limit
//! once and serves everything else from the backing allocator. Modules that
//! keep such values should not use it.
//!
//! A module opts in with two lines:
//!
//! ```ignore
//! #[cfg(target_arch = "wasm32")]
//! #[global_allocator]
//! static ALLOCATOR: fhirgate_guest_sdk::alloc::CallArena = fhirgate_guest_sdk::alloc::CallArena::new();
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ptr;

/// Chunks held at once; past this, allocations go to the backing allocator.
const MAX_CHUNKS: usize = 12;
/// Alignment of every chunk.
const CHUNK_ALIGN: usize = 16;

/// A bump allocator over chunks of `B` (the system allocator by default),
/// restarting whenever nothing it handed out is still live. See the
/// [module documentation](self).
pub struct CallArena<B: GlobalAlloc = System> {
    backing: B,
    /// `(start, size)` of each chunk, oldest first.
    chunks: [Cell<(usize, usize)>; MAX_CHUNKS],
    count: Cell<usize>,
    /// Bytes held in chunks.
    held: Cell<usize>,
    /// The next free byte and the end of the newest chunk.
    next: Cell<usize>,
    end: Cell<usize>,
    /// Blocks handed out from chunks and not yet freed.
    live: Cell<usize>,
}

// SAFETY: without the `atomics` feature a WebAssembly module runs on one
// thread; the arena is only ever touched by that thread. (Threaded wasm and
// native builds do not get this: there it can only be a local value, as the
// tests use it.)
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl<B: GlobalAlloc + Sync> Sync for CallArena<B> {}

impl CallArena<System> {
    /// An empty arena over the system allocator; takes no memory until used.
    pub const fn new() -> Self {
        Self::with_backing(System)
    }
}

impl Default for CallArena<System> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: GlobalAlloc> CallArena<B> {
    /// Blocks this large or larger come from the backing allocator.
    pub const LARGE: usize = 16 * 1024;
    /// Size of the first chunk; each further chunk doubles the last.
    pub const FIRST_CHUNK: usize = 16 * 1024;
    /// Most bytes held in chunks.
    pub const LIMIT: usize = 16 * 1024 * 1024;

    /// An empty arena taking its chunks from `backing`.
    pub const fn with_backing(backing: B) -> Self {
        CallArena {
            backing,
            chunks: [const { Cell::new((0, 0)) }; MAX_CHUNKS],
            count: Cell::new(0),
            held: Cell::new(0),
            next: Cell::new(0),
            end: Cell::new(0),
            live: Cell::new(0),
        }
    }

    /// Bytes currently held in chunks.
    pub fn held(&self) -> usize {
        self.held.get()
    }

    /// Blocks handed out from chunks and not yet freed.
    pub fn live(&self) -> usize {
        self.live.get()
    }

    fn owns(&self, p: usize) -> bool {
        // The newest chunk first: most frees are of recent blocks.
        (0..self.count.get()).rev().any(|i| {
            let (start, size) = self.chunks[i].get();
            p >= start && p < start + size
        })
    }

    /// Bumps within the newest chunk, if the block fits.
    fn bump(&self, layout: Layout) -> Option<*mut u8> {
        let at = self.next.get().checked_add(layout.align() - 1)? & !(layout.align() - 1);
        let until = at.checked_add(layout.size())?;
        if self.count.get() == 0 || until > self.end.get() {
            return None;
        }
        self.next.set(until);
        self.live.set(self.live.get() + 1);
        Some(at as *mut u8)
    }

    /// Takes a new chunk big enough for `layout`, within the limits.
    fn grow(&self, layout: Layout) -> bool {
        let count = self.count.get();
        if count == MAX_CHUNKS {
            return false;
        }
        let last = if count == 0 { 0 } else { self.chunks[count - 1].get().1 };
        let needed = layout.size() + layout.align();
        let size = (last * 2).max(Self::FIRST_CHUNK).max(needed.next_power_of_two());
        if self.held.get() + size > Self::LIMIT {
            return false;
        }
        let Ok(chunk_layout) = Layout::from_size_align(size, CHUNK_ALIGN) else { return false };
        // SAFETY: `size` is non-zero.
        let start = unsafe { self.backing.alloc(chunk_layout) };
        if start.is_null() {
            return false;
        }
        self.chunks[count].set((start as usize, size));
        self.count.set(count + 1);
        self.held.set(self.held.get() + size);
        self.next.set(start as usize);
        self.end.set(start as usize + size);
        true
    }

    /// Nothing handed out is live: keeps the newest (largest) chunk, returns
    /// the others, and bumps from its start again.
    fn restart(&self) {
        let count = self.count.get();
        if count == 0 {
            return;
        }
        for i in 0..count - 1 {
            let (start, size) = self.chunks[i].get();
            // SAFETY: the chunk came from `backing` with this layout.
            unsafe { self.backing.dealloc(start as *mut u8, Layout::from_size_align_unchecked(size, CHUNK_ALIGN)) };
        }
        let newest = self.chunks[count - 1].get();
        self.chunks[0].set(newest);
        self.count.set(1);
        self.held.set(newest.1);
        self.next.set(newest.0);
        self.end.set(newest.0 + newest.1);
    }
}

// SAFETY: blocks come either from a chunk (disjoint, aligned bumps within
// memory the arena holds until no block is live) or from the backing
// allocator, and are returned to wherever they came from.
unsafe impl<B: GlobalAlloc> GlobalAlloc for CallArena<B> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= Self::LARGE {
            // SAFETY: forwarded with the caller's layout.
            return unsafe { self.backing.alloc(layout) };
        }
        if let Some(p) = self.bump(layout) {
            return p;
        }
        if self.grow(layout)
            && let Some(p) = self.bump(layout)
        {
            return p;
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { self.backing.alloc(layout) }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if !self.owns(p as usize) {
            // SAFETY: not from a chunk, so from `backing` with this layout.
            return unsafe { self.backing.dealloc(p, layout) };
        }
        let live = self.live.get() - 1;
        self.live.set(live);
        if live == 0 {
            self.restart();
        } else if p as usize + layout.size() == self.next.get() {
            // The newest block: its space can be bumped again.
            self.next.set(p as usize);
        }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let at = p as usize;
        if !self.owns(at) {
            // SAFETY: not from a chunk, so from `backing` with this layout.
            return unsafe { self.backing.realloc(p, layout, new_size) };
        }
        // The newest block grows or shrinks in place while it fits.
        if at + layout.size() == self.next.get() && new_size < Self::LARGE && at + new_size <= self.end.get() {
            self.next.set(at + new_size);
            return p;
        }
        if new_size <= layout.size() {
            return p;
        }
        // SAFETY: the caller guarantees `new_size` with this alignment is a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a valid, non-zero layout.
        let moved = unsafe { self.alloc(new_layout) };
        if !moved.is_null() {
            // SAFETY: both blocks are live and at least `layout.size()` long; the new one is fresh.
            unsafe {
                ptr::copy_nonoverlapping(p, moved, layout.size());
                self.dealloc(p, layout);
            }
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The system allocator, counting what it hands out.
    #[derive(Default)]
    struct Counting {
        blocks: AtomicUsize,
        bytes: AtomicUsize,
    }

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            self.blocks.fetch_add(1, Ordering::Relaxed);
            self.bytes.fetch_add(layout.size(), Ordering::Relaxed);
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
            self.blocks.fetch_sub(1, Ordering::Relaxed);
            self.bytes.fetch_sub(layout.size(), Ordering::Relaxed);
            unsafe { System.dealloc(p, layout) }
        }
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn bumps_aligned_disjoint_blocks_and_restarts_when_none_is_live() {
        let arena = CallArena::with_backing(Counting::default());
        let mut blocks = Vec::new();
        for (i, align) in [1usize, 8, 2, 16, 4, 64].into_iter().cycle().take(600).enumerate() {
            let l = layout(1 + i % 97, align);
            let p = unsafe { arena.alloc(l) };
            assert!(!p.is_null());
            assert_eq!(p as usize % align, 0);
            unsafe { ptr::write_bytes(p, i as u8, l.size()) };
            blocks.push((p, l, i as u8));
        }
        assert_eq!(arena.live(), 600);
        // Every block still holds what was written to it: none overlap.
        for &(p, l, v) in &blocks {
            assert!((0..l.size()).all(|k| unsafe { *p.add(k) } == v));
        }
        assert!(arena.count.get() > 1, "the blocks took more than the first chunk");
        for (p, l, _) in blocks.drain(..) {
            unsafe { arena.dealloc(p, l) };
        }
        assert_eq!(arena.live(), 0);
        // The newest chunk kept, the others returned; the next call starts
        // at its beginning.
        assert_eq!(arena.backing.blocks.load(Ordering::Relaxed), 1);
        let (start, size) = arena.chunks[0].get();
        assert_eq!(arena.held(), size);
        assert_eq!(unsafe { arena.alloc(layout(8, 1)) } as usize, start);
    }

    #[test]
    fn large_blocks_and_blocks_past_the_limit_come_from_the_backing_allocator() {
        let arena = CallArena::with_backing(Counting::default());
        let big = layout(CallArena::<Counting>::LARGE, 8);
        let p = unsafe { arena.alloc(big) };
        assert!(!arena.owns(p as usize));
        assert_eq!(arena.held(), 0);
        unsafe { arena.dealloc(p, big) };
        assert_eq!(arena.backing.bytes.load(Ordering::Relaxed), 0);

        // Never freed: the arena fills up to its limit, then hands over.
        let small = layout(4000, 8);
        let mut outside = 0;
        let mut kept = Vec::new();
        for _ in 0..(CallArena::<Counting>::LIMIT / small.size()) * 2 {
            let p = unsafe { arena.alloc(small) };
            assert!(!p.is_null());
            outside += usize::from(!arena.owns(p as usize));
            kept.push(p);
        }
        assert!(arena.held() <= CallArena::<Counting>::LIMIT);
        assert!(outside > kept.len() / 3, "{outside} of {} from the backing allocator", kept.len());
        for p in kept {
            unsafe { arena.dealloc(p, small) };
        }
        assert_eq!(arena.live(), 0);
        assert_eq!(arena.held(), arena.backing.bytes.load(Ordering::Relaxed));
    }

    #[test]
    fn realloc_grows_in_place_at_the_end_and_copies_otherwise() {
        let arena = CallArena::with_backing(Counting::default());
        let l = layout(16, 8);
        let a = unsafe { arena.alloc(l) };
        unsafe { ptr::copy_nonoverlapping(b"0123456789abcdef".as_ptr(), a, 16) };
        let grown = unsafe { arena.realloc(a, l, 64) };
        assert_eq!(grown, a, "the newest block grows in place");
        let b = unsafe { arena.alloc(layout(8, 8)) };
        let moved = unsafe { arena.realloc(a, layout(64, 8), 128) };
        assert_ne!(moved, a);
        assert_eq!(unsafe { std::slice::from_raw_parts(moved, 16) }, b"0123456789abcdef");
        // Growing past `LARGE` moves the block to the backing allocator.
        let large = unsafe { arena.realloc(moved, layout(128, 8), CallArena::<Counting>::LARGE * 2) };
        assert!(!arena.owns(large as usize));
        assert_eq!(unsafe { std::slice::from_raw_parts(large, 16) }, b"0123456789abcdef");
        unsafe {
            arena.dealloc(large, layout(CallArena::<Counting>::LARGE * 2, 8));
            arena.dealloc(b, layout(8, 8));
        }
        assert_eq!(arena.live(), 0);
    }

    #[test]
    fn a_json_document_round_trips_through_the_arena() {
        // The workload the arena exists for, driven through its API by a
        // local `Vec` of blocks the way a parser would use it.
        let arena = CallArena::with_backing(Counting::default());
        for round in 0..50 {
            let mut blocks: Vec<(*mut u8, Layout)> = Vec::new();
            for i in 0..2000 {
                let l = layout(8 + (i * 7 + round) % 200, 8);
                blocks.push((unsafe { arena.alloc(l) }, l));
                if i % 3 == 0 {
                    let (p, l) = blocks.swap_remove(i % blocks.len());
                    unsafe { arena.dealloc(p, l) };
                }
            }
            for (p, l) in blocks {
                unsafe { arena.dealloc(p, l) };
            }
            assert_eq!(arena.live(), 0);
        }
        // Steady state: one chunk, reused every round.
        assert_eq!(arena.backing.blocks.load(Ordering::Relaxed), 1);
    }
}
