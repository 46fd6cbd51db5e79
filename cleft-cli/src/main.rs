//! The `cleft` binary: the command line of [`cleft_cli`] over every built-in component.

fn main() {
    cleft_cli::main_with(cleft_builtins::registry())
}
