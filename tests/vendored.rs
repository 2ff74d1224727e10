//! What the patches of the vendored crates give (`vendor/README.md`); each test fails if its
//! patch is lost (an upgrade of the crate, the `[patch.crates-io]` line removed).
//!
//! ractor (`vendor/ractor`): what one idle actor keeps allocated. statusd runs one per asset, so
//! at 100,000 assets every kilobyte here is 100 MB of resident memory. Published ractor 0.16.5
//! gives each actor two tokio unbounded channels (messages, supervision events) that allocate
//! their first 32-slot block and their cache-padded state when created: ≈ 4.4 KB per actor
//! before the actor has received anything, and an asset's actor never receives a supervision
//! event. The patched ports allocate per message instead. The first test counts the bytes that
//! stay allocated per idle actor, with a counting allocator around the system's: without the
//! patch the count was 6,351 bytes, with it 2,127 (2026-12-02), and 1,767 once each message's
//! handling was boxed (2026-12-05). The second checks that boxing: without it, an actor whose
//! messages carry 2 KiB kept 4,089 bytes more than one whose messages are small. The third
//! checks what tokio's channels gave for free and futures' do not: an actor whose mailbox stays
//! full still lets the other tasks of its worker thread run (tokio's task budget).
//!
//! hyper (`vendor/hyper`): an HTTP probe reads heads of up to 1,000 header lines
//! (`http1_max_headers`), and published hyper 1.12.0 wrote the 2 × 32,000 bytes of room it
//! reserves for them before every parse, ≈ 12,000 instructions per probe (callgrind,
//! 2026-12-02). The third test marks the blocks of that size when they are allocated and sees,
//! when they are freed, that the room was left as it was.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The system allocator, counting the bytes each thread has allocated and not freed, and, while
/// a thread asks for it, marking the blocks of [`ROOM`] bytes it allocates. Per
/// thread, because the tests of this file run in parallel: a test on a current-thread runtime
/// runs its actors and its client on its own thread, so what it sees is its own.
struct Counting;

/// The byte marked blocks are filled with when allocated.
const MARK: u8 = 0xA5;
/// The size of the blocks marked: hyper's room for 1,000 headers, 32 bytes each (a header's
/// positions, 4 `usize`s; httparse's `Header`, two slices).
const ROOM: usize = 1000 * 32;

thread_local! {
    // Const-initialised and without a destructor: reading them never allocates.
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
    static MARKING: Cell<bool> = const { Cell::new(false) };
    /// The marked blocks freed so far: how many, and the fewest bytes any kept of its mark.
    static MARKED_FREED: Cell<(usize, usize)> = const { Cell::new((0, usize::MAX)) };
}

fn count(bytes: isize) {
    // During a thread's teardown the slot may be gone; nothing measured then.
    let _ = LIVE_BYTES.try_with(|live| live.set(live.get() + bytes));
}

fn live_bytes() -> isize {
    LIVE_BYTES.with(Cell::get)
}

fn marking(size: usize) -> bool {
    size == ROOM && MARKING.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: every call is forwarded unchanged to the system allocator; a counter is added, and a
// marked block is written and read only between its allocation and its release, by us.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        let block = unsafe { System.alloc(layout) };
        if !block.is_null() && marking(layout.size()) {
            unsafe { block.write_bytes(MARK, layout.size()) };
        }
        block
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        if marking(layout.size()) {
            // Volatile: what the program left in the block is read as bytes, whatever it was.
            let kept = (0..layout.size()).filter(|&i| unsafe { ptr.add(i).read_volatile() } == MARK).count();
            let _ = MARKED_FREED.try_with(|freed| {
                let (blocks, fewest) = freed.get();
                freed.set((blocks + 1, fewest.min(kept)));
            });
        }
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// An actor with a state of one counter, as small as an actor gets. Its messages carry `PAYLOAD`
/// bytes inline besides (none for the plainest), as an asset's messages carry a probe's result.
struct Idle<const PAYLOAD: usize>;

/// Asks for the count, and counts the asking.
struct Ping<const PAYLOAD: usize>(RpcReplyPort<u64>, [u8; PAYLOAD]);

impl<const PAYLOAD: usize> Actor for Idle<PAYLOAD> {
    type Msg = Ping<PAYLOAD>;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Self::Msg>, _: ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        Ping(reply, _payload): Self::Msg,
        count: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        *count += 1;
        // The asker may have given up; the count is kept either way.
        let _ = reply.send(*count);
        Ok(())
    }
}

/// Bytes that stay allocated per actor once `n` idle actors with messages of `PAYLOAD` bytes are
/// spawned (and each has handled one message, as an asset's actor has handled its ticks).
async fn live_bytes_per_actor<const PAYLOAD: usize>(n: usize) -> isize {
    let mut actors = Vec::with_capacity(n);
    let before = live_bytes();
    for _ in 0..n {
        let (actor, _handle) = Actor::spawn(None, Idle::<PAYLOAD>, ()).await.expect("spawn");
        actors.push(actor);
    }
    for actor in &actors {
        // A round trip through every mailbox: each has received and handled a message.
        let count = ractor::call!(actor, |reply| Ping(reply, [0; PAYLOAD])).expect("the actor answers");
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
    live_bytes_per_actor::<0>(100).await;
    let per_actor = live_bytes_per_actor::<0>(2_000).await;
    println!("an idle actor keeps {per_actor} bytes allocated");
    assert!(
        per_actor < 3 * 1024,
        "an idle actor keeps {per_actor} bytes allocated: is ractor built without vendor/ractor's patch?"
    );
}

/// Published ractor handles a message in a future inline in the actor's loop, so every actor
/// kept room for its largest message (twice: the message and its `handle` future) for as long
/// as it lived; patched, the handling is boxed for the time it runs.
#[tokio::test(flavor = "current_thread")]
async fn an_idle_actor_keeps_no_room_for_the_messages_it_handles() {
    const LARGE: usize = 2048;
    live_bytes_per_actor::<0>(100).await;
    let small = live_bytes_per_actor::<0>(2_000).await;
    let large = live_bytes_per_actor::<LARGE>(2_000).await;
    println!("an idle actor keeps {small} bytes allocated, {large} with messages of {LARGE} bytes");
    assert!(
        large - small < 256,
        "an idle actor with messages of {LARGE} bytes keeps {} bytes more than one with small messages: \
         is ractor built without vendor/ractor's patch?",
        large - small
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

/// Answers one request with a head of two header lines and the body `ok`, then closes.
async fn answer_once(listener: tokio::net::TcpListener) {
    let (mut stream, _) = listener.accept().await.expect("accept");
    let mut request = Vec::new();
    let mut chunk = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut chunk).await.expect("read the request");
        assert!(read > 0, "the client closed before its request's head ended");
        request.extend_from_slice(&chunk[..read]);
    }
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok";
    stream.write_all(head.as_bytes()).await.expect("answer");
}

/// One thread, so that every block the client allocates is marked and seen freed here.
#[tokio::test(flavor = "current_thread")]
async fn a_response_head_is_parsed_without_writing_the_room_for_1000_headers() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("address"));
    let server = tokio::spawn(answer_once(listener));
    // As statusd's HTTP probe builds its client (src/probe/http.rs), as far as the head goes.
    let client = reqwest::Client::builder()
        .http1_max_headers(1000)
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");

    MARKING.with(|marking| marking.set(true));
    let response = client.get(&url).send().await.expect("the response");
    let status = response.status();
    let body = response.text().await.expect("the body");
    drop(client);
    MARKING.with(|marking| marking.set(false));
    server.await.expect("the server answered");
    assert_eq!((status.as_u16(), body.as_str()), (200, "ok"));

    let (blocks, fewest_kept) = MARKED_FREED.with(Cell::get);
    println!("{blocks} marked blocks freed; the least kept {fewest_kept} bytes of its mark");
    // Two blocks of room (header positions and httparse's headers), 32,000 bytes each; httparse
    // writes 32 bytes per header line it finds, two here.
    assert!(blocks >= 2, "{blocks} blocks of {ROOM} bytes were freed: hyper reserved no room for 1,000 headers");
    assert!(
        fewest_kept >= 31_000,
        "a block of room for headers kept only {fewest_kept} bytes of its mark: is hyper built without vendor/hyper's patch?"
    );
}
