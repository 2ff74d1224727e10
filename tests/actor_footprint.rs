//! What one idle actor keeps allocated: statusd runs one per asset, so at 100,000 assets every
//! kilobyte here is 100 MB of resident memory.
//!
//! Published ractor 0.16.5 gives each actor two tokio unbounded channels (messages, supervision
//! events) that allocate their first 32-slot block and their cache-padded state when created:
//! ≈ 4.4 KB per actor before the actor has received anything, and an asset's actor never
//! receives a supervision event. statusd builds ractor from `vendor/ractor` with a patch
//! (`vendor/README.md`) whose ports allocate per message instead. This test counts the bytes
//! that stay allocated per idle actor, with a counting allocator around the system's, and fails
//! if the patch is lost (a ractor upgrade, the `[patch.crates-io]` lines removed): without it the
//! count was 6,351 bytes, with it 2,127 (2026-12-02).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

/// The system allocator, counting the bytes currently allocated.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// An actor with a state of one counter, as small as an actor gets.
struct Idle;

/// Asks for the count, and counts the asking.
struct Ping(RpcReplyPort<u64>);

impl Actor for Idle {
    type Msg = Ping;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Ping>, _: ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(&self, _: ActorRef<Ping>, Ping(reply): Ping, count: &mut u64) -> Result<(), ActorProcessingErr> {
        *count += 1;
        // The asker may have given up; the count is kept either way.
        let _ = reply.send(*count);
        Ok(())
    }
}

/// Bytes that stay allocated per actor once `n` idle actors are spawned (and each has handled
/// one message, as an asset's actor has handled its ticks).
async fn live_bytes_per_actor(n: usize) -> isize {
    let mut actors = Vec::with_capacity(n);
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    for _ in 0..n {
        let (actor, _handle) = Actor::spawn(None, Idle, ()).await.expect("spawn");
        actors.push(actor);
    }
    for actor in &actors {
        // A round trip through every mailbox: each has received and handled a message.
        let count = ractor::call!(actor, Ping).expect("the actor answers");
        assert_eq!(count, 1);
    }
    let per_actor = (LIVE_BYTES.load(Ordering::Relaxed) - before) / n as isize;
    for actor in actors {
        actor.stop_and_wait(None, None).await.expect("stop");
    }
    per_actor
}

#[tokio::test(flavor = "current_thread")]
async fn an_idle_actor_keeps_less_than_3_kib() {
    // Warm up first: the runtime, the actor id counter and the registry allocate once.
    live_bytes_per_actor(100).await;
    let per_actor = live_bytes_per_actor(2_000).await;
    println!("an idle actor keeps {per_actor} bytes allocated");
    assert!(
        per_actor < 3 * 1024,
        "an idle actor keeps {per_actor} bytes allocated: is ractor built without vendor/ractor's patch?"
    );
}
