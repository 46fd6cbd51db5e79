//! `docs/writing-a-plugin.md`: every `rust` block is an excerpt of an example the workspace
//! compiles and tests, so the guide cannot drift from code that builds.

const GUIDE: &str = include_str!("../../docs/writing-a-plugin.md");
const SOURCES: [&str; 6] = [
    include_str!("../../examples/plugin-convnext/src/lib.rs"),
    include_str!("../../examples/plugin-convnext/tests/forward.rs"),
    include_str!("../../examples/plugin-dora/src/lib.rs"),
    include_str!("../../examples/custom-encoder/src/lib.rs"),
    include_str!("../../examples/custom-encoder/src/main.rs"),
    include_str!("../../cleft-cli/src/main.rs"),
];

/// Lines trimmed, blank lines dropped, joined by newlines.
fn normalised(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

fn rust_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, fence) if fence.starts_with("```rust") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "unterminated code block");
    blocks
}

#[test]
fn every_rust_block_of_the_plugin_guide_is_compiled_example_code() {
    let sources: Vec<String> = SOURCES.iter().map(|s| normalised(s)).collect();
    let blocks = rust_blocks(GUIDE);
    assert!(blocks.len() >= 7, "found only {} rust blocks", blocks.len());
    for block in blocks {
        let block = normalised(&block);
        assert!(
            sources.iter().any(|source| source.contains(&block)),
            "this block of docs/writing-a-plugin.md is in no example source:\n{block}"
        );
    }
}
