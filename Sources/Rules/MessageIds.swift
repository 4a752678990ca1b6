import Foundation

/// The ids the ESB contract fixes (docs/esb-contract.md): outbound message ids that embed the
/// conversation and the route of the ticket whose message caused them, and the stable hashes behind
/// them. Pure, so the engine can name what it sends.
package enum MessageIds {
    /// The pseudo-endpoint timers arrive from.
    package static let timerEndpoint = "switchboard"

    /// `sb-<conversation>-<route>-<inbound>-<n>` (`t<n>` for a timer). An ack (whose correlation_id is one
    /// of them) and a timer thus go to the same partition as that ticket's own messages, without asking
    /// the store, and are processed in the order they were published relative to them.
    package static func outbound(conversation: String, route: UInt64, inbound: String, index: Int, timer: Bool = false) -> String {
        "sb-\(conversation)-\(hex(route))-\(inbound)-\(timer ? "t" : "")\(index)"
    }

    package static func parse(outbound id: String) -> (conversation: String, route: UInt64)? {
        let parts = id.split(separator: "-")
        guard parts.count == 5, parts[0] == "sb", parts[1].count == 32, let route = UInt64(parts[2], radix: 16) else {
            return nil
        }
        return (String(parts[1]), route)
    }

    /// The route of a ticket: which partition its messages (and the acks and timers they cause) use.
    package static func route(endpoint: String, ticket: String) -> UInt64 {
        var h = Hash.FNV64()
        h.add(endpoint)
        h.add([0])
        h.add(ticket)
        return h.value
    }

    /// 16 hex digits naming an inbound message within its conversation's outbound ids, applied on top of
    /// conversation version `version`: stable, so a message evaluated again on the same state (after a
    /// crash) produces the same outbound ids; fresh when the same message id is applied again later (a
    /// re-sync or a replay after the store forgot it, past the dedupe window), so that effect is a new one
    /// with new ids, neither mistaken by receivers for the old one nor colliding with its outbox rows.
    package static func inboundHash(endpoint: String, messageId: String, version: Int) -> String {
        var h = Hash.FNV128()
        h.add(endpoint)
        h.add([0])
        h.add(messageId)
        h.add([0])
        h.add(String(version))
        return String(h.hex.prefix(16))
    }

    package static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: max(0, 16 - s.count)) + s
    }
}

/// FNV-1a: fast, stable across processes and versions (unlike Swift's seeded Hasher), not cryptographic.
package enum Hash {
    package struct FNV64 {
        package var value: UInt64 = 0xcbf2_9ce4_8422_2325
        package init() {}
        // Concrete overloads over contiguous bytes: a generic over Sequence is not specialized across modules,
        // and iterating a body through the protocol cost about 2 % of `switchboard run`'s CPU (a message's
        // digest reads its whole body; BENCHMARKS.md, twentieth session).
        package mutating func add(_ s: String) {
            var s = s
            s.withUTF8 { add(UnsafeRawBufferPointer($0)) }
        }
        package mutating func add(_ bytes: [UInt8]) { bytes.withUnsafeBytes { add($0) } }
        package mutating func add(_ data: Data) { data.withUnsafeBytes { add($0) } }
        package mutating func add(_ bytes: UnsafeRawBufferPointer) {
            var v = value
            for i in 0..<bytes.count {
                v ^= UInt64(bytes[i])
                v &*= 0x0000_0100_0000_01B3
            }
            value = v
        }
        package var hex: String { String(value, radix: 16).leftPadded(16) }
    }

    package struct FNV128 {
        private var value: UInt128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d
        private static let prime: UInt128 = 0x0000_0000_0100_0000_0000_0000_0000_013B
        package init() {}
        package mutating func add(_ s: String) { add(Array(s.utf8)) }
        package mutating func add<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
            for b in bytes {
                value ^= UInt128(b)
                value &*= Self.prime
            }
        }
        package var hex: String { String(value, radix: 16).leftPadded(32) }
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
