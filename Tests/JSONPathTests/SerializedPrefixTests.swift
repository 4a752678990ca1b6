import Testing

@testable import JSONPath

/// `serializedString(maxBytes:)` writes only the first bytes of a value's text: a prefix of the whole
/// serialization (cut back to a whole character), and `truncated` exactly when there was more.
@Test func aSerializedPrefixIsThePrefixOfTheWholeText() throws {
    let values: [JSON] = [
        .null, 12.5, "short", .string(String(repeating: "a\"\n✓", count: 80)),
        ["z": .string(String(repeating: "é", count: 300)), "a": [1, 2, .string(String(repeating: "x", count: 50))], "m": ["k": false]],
        .array((0..<100).map { .number(JSONNumber(Double($0))) }),
    ]
    for value in values {
        let whole = value.serializedString
        for limit in [0, 1, 5, 17, 64, 100, 404, 5000] {
            let (text, truncated) = value.serializedString(maxBytes: limit)
            #expect(whole.hasPrefix(text), "\(limit): \(text) is not a prefix of \(whole)")
            #expect(truncated == (whole.utf8.count > limit), "\(limit) of \(whole.utf8.count) bytes")
            #expect(text.utf8.count <= limit || !truncated)
            if truncated { #expect(text.utf8.count >= limit - 3, "cut back at most one character") }
        }
    }
}
