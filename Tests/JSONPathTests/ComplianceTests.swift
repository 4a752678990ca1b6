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

@Test func serializationIsCanonical() throws {
    let v = try JSON.parse(#"{"b":1.0,"a":[true,null,"x/y",2.5]}"#)
    #expect(v.serializedString == #"{"a":[true,null,"x/y",2.5],"b":1}"#)
}
