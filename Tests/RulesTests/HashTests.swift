import Foundation
import Testing

@testable import Rules

/// Ids, routes and digests are FNV-1a: the published test vectors, over every kind of input, so an id a
/// worker of one release made is the id a worker of the next makes.
@Suite struct HashTests {
    @Test func fnv1a64MatchesThePublishedVectorsForEveryInputKind() {
        for (text, expected) in [("", 0xcbf2_9ce4_8422_2325 as UInt64), ("a", 0xaf63_dc4c_8601_ec8c), ("foobar", 0x8594_4171_f739_67e8)] {
            var s = Hash.FNV64()
            s.add(text)
            var b = Hash.FNV64()
            b.add(Array(text.utf8))
            var d = Hash.FNV64()
            d.add(Data(text.utf8))
            #expect(s.value == expected && b.value == expected && d.value == expected, "\(text)")
        }
        // Pieces add up to the whole.
        var parts = Hash.FNV64()
        parts.add("foo")
        parts.add(Data("bar".utf8))
        #expect(parts.value == 0x8594_4171_f739_67e8)
        #expect(MessageIds.route(endpoint: "customer-a", ticket: "INC0010001") == {
            var h = Hash.FNV64()
            h.add(Array("customer-a".utf8) + [0] + Array("INC0010001".utf8))
            return h.value
        }())
    }
}
