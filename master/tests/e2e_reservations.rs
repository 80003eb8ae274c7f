//! End-to-end: dynamic reservations and persistent volumes against real master and agent
//! processes: ACCEPT with RESERVE / UNRESERVE / CREATE / DESTROY, the operator endpoints
//! (HTTP and gRPC), refusals that change nothing, and a master kill -9 + restart.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use agora_proto::TaskState;
use agora_proto::v1::{self, operation::Operation as Op};
use agora_resources::Resources;
use support::*;
use tonic::Code;

fn op(make: fn(Vec<v1::Resource>) -> Op, text: &str) -> v1::Operation {
    v1::Operation {
        operation: Some(make(res(text).to_proto())),
    }
}

fn reserve(text: &str) -> v1::Operation {
    op(
        |resources| Op::Reserve(v1::operation::Reserve { resources }),
        text,
    )
}

fn unreserve(text: &str) -> v1::Operation {
    op(
        |resources| Op::Unreserve(v1::operation::Unreserve { resources }),
        text,
    )
}

fn create(text: &str) -> v1::Operation {
    op(
        |volumes| Op::Create(v1::operation::Create { volumes }),
        text,
    )
}

fn destroy(text: &str) -> v1::Operation {
    op(
        |volumes| Op::Destroy(v1::operation::Destroy { volumes }),
        text,
    )
}

/// The first agent's total as the state endpoint shows it.
fn agent_resources(c: &Cluster) -> Resources {
    let s = c.state();
    Resources::from_json(&s["agents"][0]["resources"].to_string()).expect("agent resources")
}

fn agent_id(c: &Cluster) -> String {
    c.state()["agents"][0]["id"]
        .as_str()
        .expect("agent id")
        .to_string()
}

fn wait_path(path: &Path, exists: bool) {
    let deadline = Instant::now() + WAIT;
    while path.exists() != exists {
        assert!(
            Instant::now() < deadline,
            "{} never {}",
            path.display(),
            if exists { "appeared" } else { "went away" }
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn framework(name: &str, role: &str, principal: &str) -> v1::FrameworkInfo {
    v1::FrameworkInfo {
        name: name.to_string(),
        roles: vec![role.to_string()],
        principal: principal.to_string(),
        failover_timeout_seconds: 60.0,
        ..Default::default()
    }
}

fn reserved(r: &Resources) -> bool {
    r.iter().any(|x| x.reservation.is_some())
}

/// Wait until the offers held (all on the one agent of these tests) together hold
/// `want`; returns their ids (an ACCEPT pools them).
async fn wait_offer_with(fw: &mut Framework, want: &Resources) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut sum = Resources::new();
        for o in &fw.offers {
            let r = Resources::from_proto(&o.resources).expect("offer resources");
            sum = sum.checked_add(&r).expect("offers add up");
        }
        if sum.contains(want) {
            return std::mem::take(&mut fw.offers)
                .into_iter()
                .map(|o| o.id)
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "no offers holding {want}; offers hold {sum}"
        );
        fw.pump(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_reserve_offers_only_to_the_role_and_unreserve_returns_them() {
    let mut cluster = Cluster::start(0);
    cluster.add_agent_with(0, &["--isolation", "process"]);
    cluster.wait_agents(1);
    let mut db = Framework::subscribe_info(cluster.addr, framework("db", "db", "alice")).await;
    let offer = db.wait_offers(1).await.remove(0);
    let before = agent_resources(&cluster);

    // Refusals: precise, and nothing changes (the offer stays usable).
    let id = || vec![offer.id.clone()];
    let cases: Vec<(Vec<v1::Operation>, Code, &str)> = vec![
        (
            vec![reserve("cpus(db,dynamic):100")],
            Code::InvalidArgument,
            "not in the offered resources",
        ),
        (
            vec![reserve("cpus(web,dynamic):1")],
            Code::InvalidArgument,
            "the offer is for role 'db'",
        ),
        (
            vec![reserve("cpus(db,dynamic,principal=mallory):1")],
            Code::PermissionDenied,
            "the framework's principal is 'alice'",
        ),
        (
            vec![reserve("cpus(db):1")],
            Code::InvalidArgument,
            "is not a dynamic reservation",
        ),
        (
            vec![unreserve("cpus:1")],
            Code::InvalidArgument,
            "is not reserved",
        ),
        (
            vec![destroy("disk(db,volume=nope,path=x):1")],
            Code::NotFound,
            "no volume 'nope' of role 'db'",
        ),
        // All or nothing: a valid RESERVE followed by a LAUNCH that does not fit.
        (
            vec![
                reserve("cpus(db,dynamic):1"),
                launch(vec![shell_task("big", "cpus:4;mem:32", "true")]),
            ],
            Code::InvalidArgument,
            "does not fit",
        ),
    ];
    for (ops, code, needle) in cases {
        assert_code(db.accept(id(), ops, None).await, code, needle);
    }
    assert_eq!(agent_resources(&cluster), before);

    // RESERVE, then a LAUNCH in the same call using the reservation (principal filled in
    // by the master).
    let r = db
        .accept(
            id(),
            vec![
                reserve("cpus(db,dynamic):2;mem(db,dynamic):256"),
                launch(vec![shell_task(
                    "r1",
                    "cpus(db,dynamic,principal=alice):1;mem(db,dynamic,principal=alice):32",
                    "true",
                )]),
            ],
            Some(0.0),
        )
        .await
        .expect("reserve and launch");
    assert_eq!(r.launched_task_ids, vec!["r1".to_string()]);
    db.wait_for("r1 FINISHED", |s| {
        s.get("r1")
            .is_some_and(|x| state_of(x) == TaskState::Finished)
    })
    .await;
    let the_reservation =
        res("cpus(db,dynamic,principal=alice):2;mem(db,dynamic,principal=alice):256");
    let total = agent_resources(&cluster);
    assert!(total.contains(&the_reservation), "{total}");
    assert_eq!(total.scalar("cpus"), before.scalar("cpus"));

    // Another role is offered only the unreserved rest, the reservation only db: db
    // suppresses offers and returns what it holds, and web sees only unreserved
    // resources.
    let held = wait_offer_with(&mut db, &the_reservation).await;
    db.client
        .suppress(v1::SuppressRequest {
            framework_id: db.id.clone(),
            roles: Vec::new(),
        })
        .await
        .expect("suppress");
    db.decline(held, 0.0).await;
    let mut web = Framework::subscribe_info(cluster.addr, framework("web", "web", "")).await;
    let web_offers = web.wait_offers(1).await;
    for _ in 0..5 {
        web.pump(Duration::from_millis(100)).await;
    }
    let mut web_offers = web_offers;
    web_offers.append(&mut web.offers);
    for o in &web_offers {
        let r = Resources::from_proto(&o.resources).expect("offer resources");
        assert!(!reserved(&r), "web was offered reserved resources: {r}");
    }
    // Revived, db gets the reservation back (web holds the rest).
    db.client
        .revive(v1::ReviveRequest {
            framework_id: db.id.clone(),
            roles: Vec::new(),
        })
        .await
        .expect("revive");
    let held = wait_offer_with(&mut db, &the_reservation).await;

    // UNRESERVE through an ACCEPT of the offer holding the reservation.
    db.accept(
        held,
        vec![unreserve(&the_reservation.to_string())],
        Some(0.0),
    )
    .await
    .expect("unreserve");
    assert_eq!(agent_resources(&cluster), before);

    // Once db is gone, web is offered the whole agent again, unreserved.
    db.client
        .teardown(v1::TeardownRequest {
            framework_id: db.id.clone(),
        })
        .await
        .expect("teardown");
    web.decline(web_offers.iter().map(|o| o.id.clone()).collect(), 0.0)
        .await;
    let all = res("cpus:4");
    wait_offer_with(&mut web, &all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_keeps_data_between_tasks_and_is_destroyed_only_when_unused() {
    let mut cluster = Cluster::start(0);
    // Default isolation: the Linux containerizer when the tests run as root with cgroups
    // (the volume link must resolve inside its mount namespace), else plain processes.
    cluster.add_agent_resources(
        0,
        "cpus:4;mem:1024;disk:1024;disk(db):512;ports:[31000-31099]",
        &[],
    );
    cluster.wait_agents(1);
    let aid = agent_id(&cluster);
    let mut db = Framework::subscribe_info(cluster.addr, framework("db", "db", "alice")).await;
    let offer = db.wait_offers(1).await.remove(0);
    let vol = "disk(db,volume=data1,path=store):100";
    let use_vol = |id: &str, cmd: &str| shell_task(id, &format!("cpus:0.5;mem:32;{vol}"), cmd);

    // CREATE and a LAUNCH writing into the new volume, in one ACCEPT.
    db.accept(
        vec![offer.id],
        vec![
            create(vol),
            launch(vec![use_vol("w", "echo hello > store/f")]),
        ],
        Some(0.0),
    )
    .await
    .expect("create and launch");
    db.wait_for("w FINISHED", |s| {
        s.get("w")
            .is_some_and(|x| state_of(x) == TaskState::Finished)
    })
    .await;
    let dir = cluster.dir.0.join("agent-0/volumes/roles/db/data1");
    assert_eq!(
        std::fs::read_to_string(dir.join("f")).expect("the data is in the volume"),
        "hello\n"
    );

    // The volume comes back in db's offers; a duplicate CREATE is refused.
    let o = wait_offer_with(&mut db, &res(vol)).await;
    let with_volume = agent_resources(&cluster);
    assert!(with_volume.contains(&res(vol)), "{with_volume}");
    assert_code(
        db.accept(o.clone(), vec![create(vol)], None).await,
        Code::AlreadyExists,
        "volume 'data1' of role 'db' already exists",
    );
    // A second task reads what the first wrote; a third keeps the volume busy.
    db.accept(
        o,
        vec![launch(vec![use_vol(
            "r",
            "test \"$(cat store/f)\" = hello",
        )])],
        Some(0.0),
    )
    .await
    .expect("launch reader");
    db.wait_for("r FINISHED", |s| {
        s.get("r")
            .is_some_and(|x| state_of(x) == TaskState::Finished)
    })
    .await;
    let o = wait_offer_with(&mut db, &res(vol)).await;
    db.accept(
        o,
        vec![launch(vec![use_vol("busy", "sleep 60")])],
        Some(0.0),
    )
    .await
    .expect("launch busy");
    db.wait_for("busy RUNNING", |s| {
        s.get("busy")
            .is_some_and(|x| state_of(x) == TaskState::Running)
    })
    .await;

    // DESTROY is refused while a live task uses the volume, from both sides.
    let body = format!(r#"{{"agent_id":"{aid}","volumes":"{vol}"}}"#);
    let (code, text) = http_request(cluster.addr, "POST", "/api/v1/volumes/destroy", Some(&body))
        .expect("destroy over http");
    assert_eq!(code, 409, "{text}");
    assert!(text.contains("in use by task 'busy'"), "{text}");
    let o = wait_offer_with(&mut db, &res("cpus:1")).await;
    assert_code(
        db.accept(o, vec![destroy(vol)], None).await,
        Code::FailedPrecondition,
        "in use by task 'busy'",
    );
    assert!(dir.join("f").exists());
    assert_eq!(
        agent_resources(&cluster),
        with_volume,
        "a refusal changed nothing"
    );

    db.client
        .kill(v1::KillRequest {
            framework_id: db.id.clone(),
            task_id: "busy".into(),
            ..Default::default()
        })
        .await
        .expect("kill");
    db.wait_for("busy KILLED", |s| {
        s.get("busy")
            .is_some_and(|x| state_of(x) == TaskState::Killed)
    })
    .await;

    // Now DESTROY (operator, gRPC) works; db's offers holding the volume are rescinded
    // first, and the agent removes the directory.
    let mut operator = v1::operator_client::OperatorClient::connect(cluster.url())
        .await
        .expect("connect");
    operator
        .destroy_volumes(v1::VolumesRequest {
            agent_id: aid.clone(),
            volumes: res(vol).to_proto(),
        })
        .await
        .expect("destroy");
    wait_path(&dir, false);
    let total = agent_resources(&cluster);
    assert!(
        total.contains(&res("disk(db):512")) && !total.iter().any(|r| r.volume.is_some()),
        "{total}"
    );
    assert_code(
        operator
            .destroy_volumes(v1::VolumesRequest {
                agent_id: aid,
                volumes: res(vol).to_proto(),
            })
            .await,
        Code::NotFound,
        "no volume 'data1'",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_reservations_and_volumes_over_http_and_grpc_survive_restarts() {
    let resources = "cpus:4;mem:1024;disk:1024;cpus(ops):1;ports:[31000-31099]";
    let mut cluster = Cluster::start(0);
    cluster.add_agent_resources(0, resources, &["--isolation", "process"]);
    cluster.wait_agents(1);
    let a = cluster.addr;
    let aid = agent_id(&cluster);
    // A framework holds an offer of everything unreserved.
    let mut holder = Framework::subscribe(a, "holder").await;
    let _held = holder.wait_offers(1).await;
    let before = agent_resources(&cluster);

    let post = |path: &str, body: &str| http_request(a, "POST", path, Some(body)).expect("post");
    for (path, body, code, needle) in [
        (
            "/api/v1/reserve",
            r#"{"agent_id":"nope","resources":"cpus(ops,dynamic):1"}"#.to_string(),
            404,
            "unknown agent id 'nope'",
        ),
        (
            "/api/v1/reserve",
            "not json".to_string(),
            400,
            "invalid request body",
        ),
        (
            "/api/v1/reserve",
            format!(r#"{{"agent_id":"{aid}","resources":"cpus:-1"}}"#),
            400,
            "resources: invalid resource 'cpus:-1'",
        ),
        (
            "/api/v1/reserve",
            format!(r#"{{"agent_id":"{aid}"}}"#),
            400,
            "missing field 'resources'",
        ),
        (
            "/api/v1/reserve",
            format!(r#"{{"agent_id":"{aid}","resources":"cpus(ops):1"}}"#),
            400,
            "is not a dynamic reservation",
        ),
        (
            "/api/v1/reserve",
            format!(r#"{{"agent_id":"{aid}","resources":"cpus(ops,dynamic):100"}}"#),
            409,
            "not available on agent",
        ),
        (
            "/api/v1/unreserve",
            format!(r#"{{"agent_id":"{aid}","resources":"cpus(ops):1"}}"#),
            409,
            "static reservations cannot be unreserved",
        ),
        (
            "/api/v1/volumes/destroy",
            format!(r#"{{"agent_id":"{aid}","volumes":"disk(ops,dynamic,volume=nope,path=x):1"}}"#),
            404,
            "no volume 'nope' of role 'ops'",
        ),
        (
            "/api/v1/volumes/create",
            format!(r#"{{"agent_id":"{aid}","volumes":"disk(ops,dynamic):1"}}"#),
            400,
            "is not a volume",
        ),
    ] {
        let (got, text) = post(path, &body);
        assert_eq!(got, code, "{path} {body}: {text}");
        assert!(text.contains(needle), "{path} {body}: {text}");
    }
    assert_eq!(
        agent_resources(&cluster),
        before,
        "a refusal changed nothing"
    );
    assert!(!holder.pump(Duration::from_millis(300)).await || holder.rescinded.is_empty());

    // Reserve (JSON array form): the held offer is rescinded to make room.
    let body = format!(
        r#"{{"agent_id":"{aid}","resources":[
            {{"name":"cpus","scalar":1,"reservation":{{"type":"dynamic","role":"ops","principal":"op"}}}},
            {{"name":"disk","scalar":200,"reservation":{{"type":"dynamic","role":"ops","principal":"op"}}}}]}}"#
    );
    let (code, text) = post("/api/v1/reserve", &body);
    assert_eq!(code, 200, "{text}");
    let deadline = Instant::now() + WAIT;
    while holder.rescinded.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the held offer was not rescinded"
        );
        holder.pump(Duration::from_millis(200)).await;
    }

    let mut operator = v1::operator_client::OperatorClient::connect(cluster.url())
        .await
        .expect("connect");
    let vol = "disk(ops,dynamic,principal=op,volume=v1,path=data):150";
    operator
        .create_volumes(v1::VolumesRequest {
            agent_id: aid.clone(),
            volumes: res(vol).to_proto(),
        })
        .await
        .expect("create");
    assert_code(
        operator
            .create_volumes(v1::VolumesRequest {
                agent_id: aid.clone(),
                volumes: res("disk(ops,dynamic,principal=op,volume=v1,path=other):10").to_proto(),
            })
            .await,
        Code::AlreadyExists,
        "volume 'v1' of role 'ops' already exists",
    );
    assert_code(
        operator
            .reserve_resources(v1::ReserveResourcesRequest {
                agent_id: "nope".into(),
                resources: res("cpus(ops,dynamic):1").to_proto(),
            })
            .await,
        Code::NotFound,
        "unknown agent id 'nope'",
    );
    let expected = res(&format!(
        "cpus:3;mem:1024;disk:824;ports:[31000-31099];cpus(ops):1;\
         cpus(ops,dynamic,principal=op):1;disk(ops,dynamic,principal=op):50;{vol}"
    ));
    assert_eq!(agent_resources(&cluster), expected);
    let dir = cluster.dir.0.join("agent-0/volumes/roles/ops/v1");
    wait_path(&dir, true);
    std::fs::write(dir.join("keep"), "data").expect("write into the volume");

    // Master kill -9 and restart: the registry brings the reservations and the volume
    // back once the agent re-registers.
    cluster.master.kill9();
    cluster.restart_master();
    cluster.wait_agents(1);
    cluster.wait_until("reservations restored", |s| {
        Resources::from_json(&s["agents"][0]["resources"].to_string()).is_ok_and(|r| r == expected)
    });
    // Agent crash and restart: it re-registers as the same agent and keeps its volume.
    cluster.agents[0].kill9();
    cluster.add_agent_resources(0, resources, &["--isolation", "process"]);
    cluster.wait_until("agent back with its reservations", |s| {
        s["agents"][0]["status"] == "registered"
            && Resources::from_json(&s["agents"][0]["resources"].to_string())
                .is_ok_and(|r| r == expected)
    });
    assert_eq!(
        std::fs::read_to_string(dir.join("keep")).expect("volume data kept"),
        "data"
    );

    // Unreserving disk that is a volume is refused; destroy, then unreserve everything.
    let (code, text) = post(
        "/api/v1/unreserve",
        &format!(r#"{{"agent_id":"{aid}","resources":"{vol}"}}"#),
    );
    assert_eq!(code, 409, "{text}");
    assert!(text.contains("DESTROY it first"), "{text}");
    let (code, text) = post(
        "/api/v1/volumes/destroy",
        &format!(r#"{{"agent_id":"{aid}","volumes":"{vol}"}}"#),
    );
    assert_eq!(code, 200, "{text}");
    wait_path(&dir, false);
    operator
        .unreserve_resources(v1::UnreserveResourcesRequest {
            agent_id: aid,
            resources: res("cpus(ops,dynamic,principal=op):1;disk(ops,dynamic,principal=op):200")
                .to_proto(),
        })
        .await
        .expect("unreserve");
    assert_eq!(agent_resources(&cluster), before);
}
