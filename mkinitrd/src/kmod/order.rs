//! The walk of [`ModuleTree::resolve`](super::ModuleTree::resolve): a
//! depth-first visit of dependencies and softdeps that gives modprobe's
//! load order and finds dependency cycles.

use super::*;

/// Where a module is in the walk of [`ModuleTree::resolve`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mark {
    New,
    /// Its `modules.dep` dependencies are being placed: meeting it again
    /// through one of those is a cycle.
    Deps,
    /// Its dependencies are placed; its `pre:` soft dependencies are being
    /// placed.
    Pre,
    /// It is in the load order.
    Done,
}

/// What a frame of the walk is placing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stage {
    Deps,
    Pre,
    Post,
    Weak,
}

/// The modules a module's soft and weak dependencies stand for.
#[derive(Debug, Default)]
pub(super) struct SoftTargets {
    pub(super) pre: Vec<usize>,
    pub(super) post: Vec<usize>,
    pub(super) weak: Vec<usize>,
}

/// One module being placed.
#[derive(Debug)]
pub(super) struct Frame {
    pub(super) node: usize,
    pub(super) stage: Stage,
    /// How many edges of the current stage were followed.
    pub(super) next: usize,
    /// Looked up when the `Pre` stage starts.
    pub(super) soft: SoftTargets,
}

/// The depth-first walk of [`ModuleTree::resolve`]. Iterative, so a hostile
/// `modules.dep` cannot overflow the stack.
pub(super) struct Walk<'t> {
    pub(super) tree: &'t ModuleTree,
    pub(super) marks: Vec<Mark>,
    pub(super) order: Vec<usize>,
    pub(super) stack: Vec<Frame>,
}

impl Walk<'_> {
    /// Places `root` and everything it brings that is not placed yet.
    pub(super) fn visit(&mut self, root: usize) -> Result<(), Error> {
        if self.marks[root] != Mark::New {
            return Ok(());
        }
        let tree = self.tree;
        self.enter(root);
        while let Some(frame) = self.stack.last_mut() {
            let node = frame.node;
            if frame.stage == Stage::Deps {
                let deps = tree.deps_of(node);
                if frame.next == deps.len() {
                    frame.stage = Stage::Pre;
                    frame.next = 0;
                    frame.soft = tree.soft_targets(node)?;
                    self.marks[node] = Mark::Pre;
                    continue;
                }
                let dep = deps[deps.len() - 1 - frame.next];
                frame.next += 1;
                match self.marks[dep] {
                    Mark::New => self.enter(dep),
                    Mark::Done => {}
                    // `dep` waits for a soft dependency that needs `node`:
                    // its own dependencies are placed, so it can go now.
                    Mark::Pre => self.place(dep),
                    Mark::Deps => return Err(self.cycle_error(dep)),
                }
                continue;
            }
            let targets = match frame.stage {
                Stage::Pre => &frame.soft.pre,
                Stage::Post => &frame.soft.post,
                _ => &frame.soft.weak,
            };
            if let Some(&target) = targets.get(frame.next) {
                frame.next += 1;
                // A soft or weak dependency already met is not walked
                // again: this breaks a softdep cycle where it closes.
                if self.marks[target] == Mark::New {
                    self.enter(target);
                }
                continue;
            }
            frame.next = 0;
            match frame.stage {
                Stage::Pre => {
                    frame.stage = Stage::Post;
                    if self.marks[node] != Mark::Done {
                        self.place(node);
                    }
                }
                Stage::Post => frame.stage = Stage::Weak,
                _ => {
                    self.stack.pop();
                }
            }
        }
        Ok(())
    }

    /// Starts placing `node`.
    pub(super) fn enter(&mut self, node: usize) {
        self.marks[node] = Mark::Deps;
        self.stack.push(Frame {
            node,
            stage: Stage::Deps,
            next: 0,
            soft: SoftTargets::default(),
        });
    }

    /// Appends `node` to the load order.
    pub(super) fn place(&mut self, node: usize) {
        self.marks[node] = Mark::Done;
        self.order.push(node);
    }

    /// The error for a walk that met `dep` again while placing its
    /// dependencies.
    pub(super) fn cycle_error(&self, dep: usize) -> Error {
        let start = self.stack.iter().position(|f| f.node == dep).unwrap_or(0);
        let chain = self.stack[start..]
            .iter()
            .map(|f| f.node)
            .chain([dep])
            .map(|i| self.tree.name(i))
            .collect();
        Error::DependencyCycle {
            path: self.tree.moddir.join(MODULES_DEP),
            chain,
        }
    }
}
