import Foundation
import Testing

@testable import JSONPath

/// Numbers keep the text they came with: ids and amounts beyond 2^53, decimals as written.
@Suite struct NumberFidelityTests {
    @Test(arguments: [
        "12345678901234567891", "-98765432109876543210123", "9007199254740993", "1.50", "0.1", "1e3", "-0", "2.5E-7",
        "123456789012345678901234567890.000001", "42", "-7", "0",
    ])
    func aNumberIsWrittenAsItCame(_ text: String) throws {
        let value = try JSON.parse("{\"n\":\(text)}")
        #expect(String(decoding: value.serialized(), as: UTF8.self) == "{\"n\":\(text)}")
        #expect(value["n"]?.scalarText == text)
    }

    @Test func bigIntegersThatShareADoubleAreDifferentNumbers() throws {
        let a = try JSON.parse("12345678901234567891"), b = try JSON.parse("12345678901234567892")
        #expect(a != b)
        // Below 2^53, numbers compare by value, as JSONPath wants.
        #expect(try JSON.parse("1") == JSON.parse("1.0"))
        #expect(try JSON.parse("1.50") == JSON.parse("1.5"))
    }

    @Test func stringsAreExact() throws {
        let text = "\"e\\u0301 é 𝄞 \\u0000 \\\"q\\\" \\\\ 中文 🙂\""
        let value = try JSON.parse(text)
        #expect(try JSON.parse(value.serialized()) == value)
        #expect(value.stringValue == "e\u{301} é 𝄞 \u{0} \"q\" \\ 中文 🙂")
        // Canonically equivalent strings stay apart: bytes, not Unicode equivalence.
        #expect(value.stringValue?.utf8.count == "e\u{301} é 𝄞 \u{0} \"q\" \\ 中文 🙂".utf8.count)
    }

    /// The store's RPC carries attribute values through Codable: an integer beyond 2^53 crosses intact.
    @Test func bigIntegersCrossCodable() throws {
        let value = try JSON.parse("{\"id\":12345678901234567891,\"small\":3,\"f\":0.25}")
        let back = try JSONDecoder().decode(JSON.self, from: JSONEncoder().encode(value))
        #expect(back == value)
        #expect(String(decoding: back.serialized(), as: UTF8.self) == "{\"f\":0.25,\"id\":12345678901234567891,\"small\":3}")
    }
}
