//! The actor ports of the ractor statusd builds (`vendor/ractor`, patched: `vendor/README.md`).
//!
//! What one idle actor keeps allocated: statusd runs one per asset, so at 100,000 assets every
//! kilobyte here is 100 MB of resident memory. Published ractor 0.16.5 gives each actor two tokio
//! unbounded channels (messages, supervision events) that allocate their first 32-slot block and
//! their cache-padded state when created: ≈ 4.4 KB per actor before the actor has received
//! anything, and an asset's actor never receives a supervision event. The patched ports allocate
//! per message instead. The first test counts the bytes that stay allocated per idle actor, with
//! a counting allocator around the system's, and fails if the patch is lost (a ractor upgrade,
//! the `[patch.crates-io]` lines removed): without it the count was 6,351 bytes, with it 2,127
//! (2026-12-02).
//!
//! The second checks what tokio's channels gave for free and futures' do not: an actor whose
//! mailbox stays full still lets the other tasks of its worker thread run (tokio's task budget).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

/// The system allocator, counting the bytes each thread has allocated and not freed. Per
/// thread, because the tests of this file run in parallel: a test on a current-thread runtime
/// runs its actors on its own thread, so its count is its own.
struct Counting;

thread_local! {
    // Const-initialised and without a destructor: reading it never allocates.
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn count(bytes: isize) {
    // During a thread's teardown the slot may be gone; nothing measured then.
    let _ = LIVE_BYTES.try_with(|live| live.set(live.get() + bytes));
}

fn live_bytes() -> isize {
    LIVE_BYTES.with(Cell::get)
}

// SAFETY: every call is forwarded unchanged to the system allocator; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
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
    let before = live_bytes();
    for _ in 0..n {
        let (actor, _handle) = Actor::spawn(None, Idle, ()).await.expect("spawn");
        actors.push(actor);
    }
    for actor in &actors {
        // A round trip through every mailbox: each has received and handled a message.
        let count = ractor::call!(actor, Ping).expect("the actor answers");
        assert_eq!(count, 1);
    }
    let per_actor = (live_bytes() - before) / n as isize;
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

/// Counts the work it is given, and remembers at which message it first saw the flag raised.
struct Busy;

enum BusyMsg {
    Work,
    /// The message at which the flag was first seen raised, if it was.
    FirstSeen(RpcReplyPort<Option<u64>>),
}

struct BusyState {
    flag: Arc<AtomicBool>,
    handled: u64,
    first_seen: Option<u64>,
}

impl Actor for Busy {
    type Msg = BusyMsg;
    type State = BusyState;
    type Arguments = Arc<AtomicBool>;

    async fn pre_start(&self, _: ActorRef<BusyMsg>, flag: Arc<AtomicBool>) -> Result<BusyState, ActorProcessingErr> {
        Ok(BusyState { flag, handled: 0, first_seen: None })
    }

    async fn handle(
        &self,
        _: ActorRef<BusyMsg>,
        message: BusyMsg,
        state: &mut BusyState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            BusyMsg::Work => {
                state.handled += 1;
                if state.first_seen.is_none() && state.flag.load(Ordering::SeqCst) {
                    state.first_seen = Some(state.handled);
                }
            }
            BusyMsg::FirstSeen(reply) => {
                let _ = reply.send(state.first_seen);
            }
        }
        Ok(())
    }
}

/// One thread, so that the actor and the task that raises the flag take turns on it: the task
/// runs in the middle of the actor's backlog only if the actor yields while its mailbox is full.
#[tokio::test(flavor = "current_thread")]
async fn an_actor_with_a_full_mailbox_lets_the_other_tasks_run() {
    let flag = Arc::new(AtomicBool::new(false));
    let (actor, _handle) = Actor::spawn(None, Busy, flag.clone()).await.expect("spawn");
    for _ in 0..1_000 {
        actor.cast(BusyMsg::Work).expect("the actor is running");
    }
    let raise = tokio::spawn(async move { flag.store(true, Ordering::SeqCst) });
    raise.await.expect("the flag is raised");
    let first_seen = ractor::call!(actor, BusyMsg::FirstSeen).expect("the actor answers");
    println!("the flag was first seen at message {first_seen:?} of 1,000");
    // tokio's budget is 128 units a turn; the actor spends one per message received. Seen at
    // once would mean the task ran before the actor took any message: nothing was tested.
    assert!(
        first_seen.is_some_and(|at| (100..=200).contains(&at)),
        "the flag was first seen at message {first_seen:?} of 1,000: the actor held the thread through its backlog"
    );
    actor.stop_and_wait(None, None).await.expect("stop");
}
