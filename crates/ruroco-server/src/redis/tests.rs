use super::*;

fn parse(bytes: &[u8], max_array: usize) -> std::io::Result<Reply> {
    read_reply(&mut std::io::Cursor::new(bytes), max_array)
}

#[test]
fn replies() {
    assert_eq!(parse(b"+OK\r\n", 0).unwrap(), Reply::Status("OK".into()));
    assert_eq!(
        parse(b"-ERR no\r\n", 0).unwrap(),
        Reply::Error("ERR no".into())
    );
    assert_eq!(parse(b":-3\r\n", 0).unwrap(), Reply::Int(-3));
    assert_eq!(
        parse(b"$3\r\nabc\r\n", 0).unwrap(),
        Reply::Bulk(Some(b"abc".to_vec()))
    );
    assert_eq!(parse(b"$-1\r\n", 0).unwrap(), Reply::Bulk(None));
    assert_eq!(
        parse(b"*2\r\n:1\r\n:0\r\n", 2).unwrap(),
        Reply::Array(Some(vec![Reply::Int(1), Reply::Int(0)]))
    );
    assert_eq!(
        parse(b"*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n", 2).unwrap(),
        Reply::Array(Some(vec![
            Reply::Bulk(Some(b"127.0.0.1".to_vec())),
            Reply::Bulk(Some(b"6379".to_vec()))
        ]))
    );
}

#[test]
fn hostile_replies_are_errors_not_allocations() {
    let long_bulk = format!("${}\r\n", MAX_BULK + 1);
    for (bad, max) in [
        (&b"$99999999999\r\n"[..], 0),
        (long_bulk.as_bytes(), 0),
        (b"*99999999\r\n", 64),
        (b"*3\r\n:1\r\n:1\r\n:1\r\n", 2),
        (b"*1\r\n*1\r\n:1\r\n", 4),
        (b"*1\r\n+OK\r\n", 4),
        (b"*1\r\n-ERR x\r\n", 4),
        (b"?x\r\n", 0),
        (b"+no end", 0),
        (b"", 0),
        (b":x\r\n", 0),
        (b"$5\r\nab", 0),
        (b"$2\r\nabcd", 0),
    ] {
        assert!(parse(bad, max).is_err(), "{bad:?}");
    }
    let long = [b"+".as_slice(), &[b'a'; MAX_LINE + 10], b"\r\n"].concat();
    assert!(parse(&long, 0).is_err());
}

#[test]
fn urls() {
    let e = Endpoint::parse("redis://10.0.0.5:6380/2").unwrap();
    assert_eq!(
        e,
        Endpoint::Tcp {
            host: "10.0.0.5".into(),
            port: 6380,
            db: 2
        }
    );
    let e = Endpoint::parse("redis://[::1]:7000").unwrap();
    assert_eq!(e.to_string(), "redis://[::1]:7000/0");
    assert!(matches!(
        Endpoint::parse("redis://cache").unwrap(),
        Endpoint::Tcp { port: 6379, .. }
    ));
    let e = Endpoint::parse("redis+unix:///run/redis/redis.sock?db=3").unwrap();
    assert_eq!(
        e,
        Endpoint::Unix {
            path: "/run/redis/redis.sock".into(),
            db: 3
        }
    );
    let e = Endpoint::parse("redis-sentinel://10.0.0.1:26379,s2,[::1]:5/floors/1").unwrap();
    assert_eq!(
        e,
        Endpoint::Sentinel {
            sentinels: vec![
                ("10.0.0.1".into(), 26379),
                ("s2".into(), 26379),
                ("::1".into(), 5)
            ],
            master: "floors".into(),
            db: 1
        }
    );
    assert_eq!(
        e.to_string(),
        "redis-sentinel://10.0.0.1:26379,s2:26379,[::1]:5/floors/1"
    );
    for bad in [
        "redis://user:secret@host:6379",
        "rediss://host",
        "http://host",
        "redis://:6379",
        "redis://host:x",
        "redis://host/db",
        "redis+unix://relative.sock",
        "redis+unix:///x.sock?timeout=3",
        "redis-sentinel://h:1",
        "redis-sentinel://h:1/",
    ] {
        assert!(Endpoint::parse(bad).is_err(), "{bad}");
    }
    let err = Endpoint::parse("redis://u:hunter2@h").unwrap_err();
    assert!(!err.contains("hunter2"));
}

/// A reply trickled a byte at a time is cut at the deadline, whatever the socket timeout
/// of one read would allow.
#[test]
fn a_trickled_reply_is_cut_at_the_deadline() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 256];
        let _ = s.read(&mut buf);
        for b in b"*1\r\n:1\r\n".iter().cycle().take(200) {
            if s.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let resolved = Endpoint::Tcp {
        host: "127.0.0.1".into(),
        port: addr.port(),
        db: 0,
    }
    .resolve()
    .unwrap();
    let auth = Auth {
        user: None,
        password: None,
    };
    let started = Instant::now();
    let deadline = started + Duration::from_millis(300);
    let mut conn = Connection::open(&resolved, &auth, deadline).unwrap();
    let got = conn.pipeline(&[&[b"PING"]], 1, deadline);
    let took = started.elapsed();
    assert!(got.is_err(), "{got:?}");
    assert!(took < Duration::from_millis(500), "{took:?}");
    drop(conn);
    let _ = server.join();
}

/// config.toml(5) names every form of `floor_store` the parser takes, and each example
/// there parses.
#[test]
fn the_reference_names_every_accepted_form() {
    let doc = ruroco_config::fields::CONFIG_KEYS
        .fields
        .iter()
        .find(|f| f.name == "floor_store")
        .unwrap()
        .doc;
    for (scheme, example) in [
        ("redis://", "redis://10.0.0.20:6379/0"),
        ("redis+unix://", "redis+unix:///run/redis/redis.sock?db=2"),
        (
            "redis-sentinel://",
            "redis-sentinel://10.0.0.21:26379,10.0.0.22:26379/floors",
        ),
    ] {
        assert!(doc.contains(scheme), "config.toml(5) lacks {scheme}: {doc}");
        assert!(Endpoint::parse(example).is_ok(), "{example}");
    }
    assert!(Endpoint::parse("memcached://x:1").is_err());
}
