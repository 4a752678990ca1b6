import Foundation
import Testing

@testable import JSONPath

/// The official JSONPath Compliance Test Suite (Fixtures/jsonpath-cts, BSD-2, see its LICENSE and NOTICE).
struct ComplianceCase: Decodable, Sendable, CustomTestStringConvertible {
    let name: String
    let selector: String
    let document: JSON?
    let result: [JSON]?
    let result_paths: [String]?
    let results: [[JSON]]?
    let results_paths: [[String]]?
    let invalid_selector: Bool?

    var testDescription: String { name }

    static let all: [ComplianceCase] = {
        struct Suite: Decodable { let tests: [ComplianceCase] }
        guard let url = Bundle.module.url(forResource: "Fixtures/jsonpath-cts/cts", withExtension: "json"),
            let data = try? Data(contentsOf: url),
            let suite = try? JSONDecoder().decode(Suite.self, from: data)
        else { return [] }
        return suite.tests
    }()
}

@Test func complianceSuiteIsLoaded() {
    #expect(ComplianceCase.all.count > 700)
}

@Test(arguments: ComplianceCase.all)
func compliance(_ c: ComplianceCase) throws {
    if c.invalid_selector == true {
        #expect(throws: JSONPathError.self, "\(c.name): \(c.selector) must be rejected") {
            try JSONPath(c.selector)
        }
        return
    }
    let path = try JSONPath(c.selector)
    let document = try #require(c.document)
    let located = path.locate(document)
    let values = located.map(\.value)
    let paths = located.map(\.path)
    #expect(path.select(document) == values, "select and locate disagree for \(c.selector)")
    if let expected = c.result {
        #expect(values == expected, "\(c.name): \(c.selector)")
        #expect(paths == c.result_paths, "\(c.name): \(c.selector) paths")
    } else if let alternatives = c.results {
        let index = alternatives.firstIndex(of: values)
        #expect(index != nil, "\(c.name): \(c.selector) gave \(values)")
        if let index, let allPaths = c.results_paths {
            #expect(paths == allPaths[index], "\(c.name): \(c.selector) paths")
        }
    }
}

@Test func errorNamesQueryAndOffset() {
    do {
        _ = try JSONPath("$.a[?@.b == ]")
        Issue.record("accepted an invalid query")
    } catch {
        #expect(error.description.contains("$.a[?@.b == ]"))
        #expect(error.offset == 12)
    }
}

@Test func jiraChangelogFilter() throws {
    let doc = try JSON.parse(#"{"changelog":{"items":[{"field":"assignee","toString":"bob"},{"field":"status","toString":"Done"}]}}"#)
    let path = try JSONPath("$.changelog.items[?@.field == 'status'].toString")
    #expect(path.select(doc) == ["Done"])
}

/// Keys sorted; numbers as they were written (`1.0` stays `1.0`: an ITSM tool may care).
@Test func serializationSortsKeysAndKeepsNumbers() throws {
    let v = try JSON.parse(#"{"b":1.0,"a":[true,null,"x/y",2.5]}"#)
    #expect(v.serializedString == #"{"a":[true,null,"x/y",2.5],"b":1.0}"#)
}

@Test func serializationEscapesAndRoundTrips() throws {
    let tricky: JSON = ["q\"uote": "a\\b\n\t\r\u{08}\u{0C}\u{01}é☺/", "n": [1.5, -0.25, 1e20, 3, -7], "e": [:], "l": []]
    let text = tricky.serializedString
    #expect(text == #"{"e":{},"l":[],"n":[1.5,-0.25,1e+20,3,-7],"q\"uote":"a\\b\n\t\r\b\f\u0001é☺/"}"#)
    #expect(try JSON.parse(text) == tricky)
    // The same bytes Foundation's encoder would give for the parts they agree on.
    let foundation = try JSONSerialization.jsonObject(with: tricky.serialized())
    #expect(foundation is [String: Any])
}

@Test(arguments: [
    ("{\"a\": 1,, }", "line 1, column 9"),
    ("{\"a\":\n  tru}", "line 2, column 3"),
    ("[1, 2", "end of input"),
    ("\"\\ud800\"", "surrogate"),
    ("01", "leading zeros"),
    ("{\"a\":1} x", "after the JSON value"),
    ("\"tab\there\"", "control character"),
    ("", "end of input"),
])
func parseErrorsSayWhereAndWhy(input: String, expected: String) {
    do {
        _ = try JSON.parse(input)
        Issue.record("accepted \(input.debugDescription)")
    } catch {
        #expect(error.message.contains(expected), "\(input.debugDescription): \(error.message)")
    }
}

@Test func parsesWhatFoundationParses() throws {
    let text = #"{"s":"caf\u00e9 \ud83d\ude00 \"q\" \\ \/","n":[0,-0.5,1E3,2e-2,123456789012],"b":[true,false,null],"o":{"":{}}}"#
    let v = try JSON.parse(text)
    #expect(v["s"] == "café 😀 \"q\" \\ /")
    #expect(v["n"] == [0, -0.5, 1000, 0.02, 123456789012])
    #expect(v["b"] == [true, false, nil])
    #expect(v["o"] == ["": [:]])
}
