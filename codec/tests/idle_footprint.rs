//! Memory an idle connection holds: one that made a unary call and then sends
//! nothing. A server keeps many of these open (a client's channel stays connected
//! between bursts), so what each keeps after its call is a per-connection cost.
//!
//! A global allocator keeps a per-thread balance of bytes allocated minus bytes
//! freed. The test drives a connection through one call with the frame-level test
//! client, then drops everything but the connection: the balance left is the heap
//! the connection holds, whatever holds it (its buffers, its records, read buffers
//! kept alive by handles inside it).

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

use ringrpc_codec::server::{Config, Connection};
use support::*;

thread_local! {
    // A `const` initialiser with `Copy` contents: accessing it never allocates and
    // registers no destructor, so the allocator may use it at any time.
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    let _ = LIVE_BYTES.try_with(|live| live.set(live.get() + delta));
}

struct Balance;

// Safety: every call is forwarded unchanged to the system allocator; the balance
// only touches a thread-local cell.
unsafe impl GlobalAlloc for Balance {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // Safety: the caller's contract for `alloc` is passed on as is.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            track(layout.size() as isize);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // Safety: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            track(layout.size() as isize);
        }
        ptr
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Safety: `ptr` and `layout` come from this allocator, which is `System`'s.
        let grown = unsafe { System.realloc(ptr, layout, new_size) };
        if !grown.is_null() {
            track(new_size as isize - layout.size() as isize);
        }
        grown
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        track(-(layout.size() as isize));
        // Safety: as for `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Balance = Balance;

fn live_bytes() -> isize {
    LIVE_BYTES.with(Cell::get)
}

/// Heap bytes `conn` holds: the balance after everything else made since `start`
/// is gone.
fn held_since(start: isize, conn: &Connection) -> usize {
    let held = live_bytes() - start;
    assert!(
        held >= 0,
        "more freed than allocated since the start: {held}"
    );
    // Keep `conn` alive (and its heap counted) up to this point.
    std::hint::black_box(conn);
    held as usize
}

/// Runs `calls` unary calls on a fresh connection, then keeps only the connection.
fn idle_after(calls: u32) -> (Connection, isize) {
    let start = live_bytes();
    let mut client = Client::connected(Config::default());
    for n in 0..calls {
        client.assert_serves(2 * n + 1);
    }
    assert_eq!(client.conn.active_streams(), 0, "every call is over");
    let conn = std::mem::replace(
        &mut client.conn,
        Connection::new(Config::default(), Instant::now()),
    );
    drop(client);
    (conn, start)
}

/// The codec's budget for the heap of an idle connection that made one call: the
/// HPACK state (both dynamic tables, the decoder's string arena), one stream record
/// kept for reuse with the send queue it grew, and the event queue. Each of those
/// is sized for one call at a time; a record or queue that starts at the usual
/// growth of four slots (or an event queue whose slots are sized for a request
/// head) pushes the total past this.
const IDLE_HEAP_BUDGET: usize = 2 * 1024;

#[test]
fn idle_connection_after_one_call_stays_within_budget() {
    let (conn, start) = idle_after(1);
    let held = held_since(start, &conn);
    eprintln!(
        "idle connection: {} bytes inline, {held} bytes of heap",
        std::mem::size_of::<Connection>()
    );
    assert!(
        held <= IDLE_HEAP_BUDGET,
        "an idle connection holds {held} bytes of heap, over {IDLE_HEAP_BUDGET}"
    );
}

#[test]
fn more_calls_one_at_a_time_hold_no_more() {
    let (one, start) = idle_after(1);
    let after_one = held_since(start, &one);
    drop(one);
    let (many, start) = idle_after(20);
    let after_many = held_since(start, &many);
    // The HPACK tables may differ by what the extra calls indexed, but nothing
    // grows per call: records and queues are reused.
    assert!(
        after_many <= after_one + 256,
        "20 calls leave {after_many} bytes, one call {after_one}"
    );
}
