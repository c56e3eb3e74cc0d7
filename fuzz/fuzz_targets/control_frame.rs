//! Control protocol frames as the daemon decodes them: any bytes must decode to a
//! request or a clean error, never a panic; a decoded request re-encodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_ovsdb::proto::{self, Request};

fuzz_target!(|data: &[u8]| {
    if data.len() >= 4 {
        let _ = proto::frame_len([data[0], data[1], data[2], data[3]]);
    }
    if let Ok(req) = proto::decode::<Request>(data) {
        let f = proto::encode(&req).expect("a decoded request encodes");
        let body = proto::read_frame(&mut &f[..]).expect("own frame reads back");
        assert_eq!(proto::decode::<Request>(&body).expect("round trip"), req);
    }
    // The ops of a commit are applied by the daemon to a copy of the database: they
    // must fail cleanly, never panic.
    if let Ok(Request::Commit { ops, .. }) = proto::decode::<Request>(data) {
        let mut db = rvs_ovsdb::Db::new();
        db.ensure_root();
        if db.apply(&ops).is_ok() {
            db.collect_garbage();
            let _ = db.check();
        }
    }
});
