//! Arbitrary bytes as a commander message: decode never panics, and what decodes
//! re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ruroco_ipc::CommanderMessage;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(msg) = CommanderMessage::decode(bytes) {
        let again = CommanderMessage::decode(&msg.encode());
        assert_eq!(again, Ok(msg));
    }
});
