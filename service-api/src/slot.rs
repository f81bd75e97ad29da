//! `CallSlot`: where the engine keeps a call's future, inline when it fits.
//!
//! Boxing every call's future would cost one heap allocation per RPC. Instead the
//! engine owns a slot per call state (pooled and reused), the router writes the
//! call's future straight into it, and the engine polls it there. Futures larger
//! than [`INLINE_CAPACITY`] (big streaming handlers) fall back to a box.

use std::future::Future;
use std::marker::{PhantomData, PhantomPinned};
use std::mem::{align_of, size_of, MaybeUninit};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Bytes a call's future may take to be stored inline. The unary glue around a
/// small handler takes about 640 bytes.
pub const INLINE_CAPACITY: usize = 1024;

/// Alignment the inline storage guarantees.
const INLINE_ALIGN: usize = 16;

#[repr(C, align(16))]
struct Storage([MaybeUninit<u8>; INLINE_CAPACITY]);

/// How to poll and drop the future stored inline, whose type the slot forgot.
struct VTable {
    poll: unsafe fn(*mut u8, &mut Context<'_>) -> Poll<()>,
    drop: unsafe fn(*mut u8),
}

struct Inline<F>(PhantomData<F>);

impl<F: Future<Output = ()>> Inline<F> {
    const VTABLE: VTable = VTable {
        poll: Self::poll,
        drop: Self::drop,
    };

    /// # Safety
    /// `ptr` points at a live `F` that stays put until it is dropped.
    unsafe fn poll(ptr: *mut u8, cx: &mut Context<'_>) -> Poll<()> {
        // Safety: per this function's contract, the `F` is live and pinned.
        unsafe { Pin::new_unchecked(&mut *ptr.cast::<F>()) }.poll(cx)
    }

    /// # Safety
    /// `ptr` points at a live `F`, which is not used again.
    unsafe fn drop(ptr: *mut u8) {
        // Safety: per this function's contract.
        unsafe { std::ptr::drop_in_place(ptr.cast::<F>()) }
    }
}

enum Held {
    Empty,
    Inline(&'static VTable),
    Boxed(Pin<Box<dyn Future<Output = ()>>>),
}

/// Storage for one call's future, owned by the engine and handed to
/// [`crate::server::Service::call`], which [`CallSlot::put`]s the call into it.
///
/// The slot is `!Unpin` and only used through `Pin<&mut CallSlot>`: a future stored
/// inline never moves until it is dropped in place.
pub struct CallSlot {
    storage: Storage,
    held: Held,
    _pinned: PhantomPinned,
}

impl CallSlot {
    /// An empty slot. The engine pins it (e.g. `Box::pin`) and reuses it.
    pub fn new() -> CallSlot {
        CallSlot {
            storage: Storage([MaybeUninit::uninit(); INLINE_CAPACITY]),
            held: Held::Empty,
            _pinned: PhantomPinned,
        }
    }

    /// Stores `future`, dropping whatever the slot held: inline when it fits,
    /// otherwise boxed.
    #[inline]
    pub fn put<F: Future<Output = ()> + 'static>(self: Pin<&mut Self>, future: F) {
        self.put_with(move || future)
    }

    /// Stores the future `make` returns, like [`put`](Self::put), letting the
    /// compiler build it in the slot: a future is as large as its largest
    /// state (the unary glue about 600 bytes), while a new one holds only its
    /// arguments, so building it in place instead of moving it in saves a copy
    /// of the whole size per call. Generated services use this.
    #[inline(always)]
    pub fn put_with<F: Future<Output = ()> + 'static>(
        mut self: Pin<&mut Self>,
        make: impl FnOnce() -> F,
    ) {
        self.as_mut().clear();
        // Safety: nothing below moves `self`; the storage is written in place.
        let this = unsafe { self.get_unchecked_mut() };
        if size_of::<F>() <= INLINE_CAPACITY && align_of::<F>() <= INLINE_ALIGN {
            // Safety: the storage is large and aligned enough for `F` (checked
            // above) and holds nothing (cleared above); `held` records how to poll
            // and drop it, so it is dropped exactly once.
            unsafe { this.storage.0.as_mut_ptr().cast::<F>().write(make()) };
            this.held = Held::Inline(&Inline::<F>::VTABLE);
        } else {
            this.held = Held::Boxed(Box::pin(make()));
        }
    }

    /// Whether a future is stored.
    pub fn is_occupied(&self) -> bool {
        !matches!(self.held, Held::Empty)
    }

    /// Polls the stored future; `Ready` also when the slot is empty.
    pub fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Safety: the slot is pinned, and an inline future is polled where it lies.
        let this = unsafe { self.get_unchecked_mut() };
        match &mut this.held {
            Held::Empty => Poll::Ready(()),
            // Safety: `Inline` is only set by `put` right after writing an `F` that
            // matches this vtable; it stays until `clear` drops it.
            Held::Inline(vtable) => unsafe {
                (vtable.poll)(this.storage.0.as_mut_ptr().cast(), cx)
            },
            Held::Boxed(future) => future.as_mut().poll(cx),
        }
    }

    /// Drops the stored future, if any.
    pub fn clear(self: Pin<&mut Self>) {
        // Safety: nothing is moved; an inline future is dropped in place.
        let this = unsafe { self.get_unchecked_mut() };
        match std::mem::replace(&mut this.held, Held::Empty) {
            Held::Empty | Held::Boxed(_) => {}
            // Safety: the `F` written by `put` is live and, with `held` now Empty,
            // will not be used again.
            Held::Inline(vtable) => unsafe { (vtable.drop)(this.storage.0.as_mut_ptr().cast()) },
        }
    }
}

impl Default for CallSlot {
    fn default() -> Self {
        CallSlot::new()
    }
}

impl Drop for CallSlot {
    fn drop(&mut self) {
        // Safety: `drop` runs once, on a slot that will not be used again, so
        // treating it as pinned for `clear` moves nothing that is used later.
        unsafe { Pin::new_unchecked(self) }.clear();
    }
}

impl std::fmt::Debug for CallSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = match self.held {
            Held::Empty => "empty",
            Held::Inline(_) => "inline",
            Held::Boxed(_) => "boxed",
        };
        f.debug_struct("CallSlot").field("held", &held).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;
    use std::task::Waker;

    use super::*;

    /// Counts drops, to prove every stored future is dropped exactly once; the
    /// padding makes the future big enough to notice a bad copy.
    struct Probe {
        drops: Rc<Cell<u32>>,
        _padding: [u8; 64],
    }

    fn probe(drops: &Rc<Cell<u32>>) -> Probe {
        Probe {
            drops: drops.clone(),
            _padding: [7; 64],
        }
    }

    impl Drop for Probe {
        fn drop(&mut self) {
            self.drops.set(self.drops.get() + 1);
        }
    }

    fn poll(slot: Pin<&mut CallSlot>) -> Poll<()> {
        slot.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn small_futures_live_inline_and_are_dropped_once() {
        let drops = Rc::new(Cell::new(0));
        let mut slot = Box::pin(CallSlot::new());
        let probe = probe(&drops);
        let ran = Rc::new(Cell::new(false));
        let ran2 = ran.clone();
        slot.as_mut().put(async move {
            let _probe = probe;
            std::future::ready(()).await;
            ran2.set(true);
        });
        assert!(matches!(slot.held, Held::Inline(_)));
        assert_eq!(poll(slot.as_mut()), Poll::Ready(()));
        assert!(ran.get());
        assert_eq!(
            drops.get(),
            1,
            "the probe is dropped when the future completes"
        );
        slot.as_mut().clear();
        assert_eq!(drops.get(), 1);
        assert!(!slot.is_occupied());
    }

    #[test]
    fn a_pending_future_is_dropped_by_clear_put_and_drop() {
        let drops = Rc::new(Cell::new(0));
        let mut slot = Box::pin(CallSlot::new());
        for expected in 1..=2 {
            let probe = probe(&drops);
            slot.as_mut().put(async move {
                let _probe = probe;
                std::future::pending::<()>().await;
            });
            assert_eq!(poll(slot.as_mut()), Poll::Pending);
            assert_eq!(drops.get(), expected - 1);
        }
        // `put` dropped the first; `drop` of the slot drops the second.
        drop(slot);
        assert_eq!(drops.get(), 2);
    }

    #[test]
    fn large_futures_are_boxed() {
        let mut slot = Box::pin(CallSlot::new());
        let big = [1u8; INLINE_CAPACITY * 2];
        slot.as_mut().put(async move {
            std::hint::black_box(&big);
        });
        assert!(matches!(slot.held, Held::Boxed(_)));
        assert_eq!(poll(slot.as_mut()), Poll::Ready(()));
    }

    #[test]
    fn self_referential_futures_stay_put() {
        // An async block holding a reference to its own local across an await:
        // polling it inline must not move it in between.
        let mut slot = Box::pin(CallSlot::new());
        let seen = Rc::new(Cell::new(0u64));
        let seen2 = seen.clone();
        slot.as_mut().put(async move {
            let local = [3u64; 8];
            let r = &local;
            let mut yielded = false;
            std::future::poll_fn(|_| {
                if yielded {
                    Poll::Ready(())
                } else {
                    yielded = true;
                    Poll::Pending
                }
            })
            .await;
            seen2.set(r.iter().sum());
        });
        assert_eq!(poll(slot.as_mut()), Poll::Pending);
        assert_eq!(poll(slot.as_mut()), Poll::Ready(()));
        assert_eq!(seen.get(), 24);
    }
}
