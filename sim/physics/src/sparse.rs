//! Sparse Cholesky factorization for the symmetric positive definite systems of
//! the hydraulic solver (weighted graph Laplacians with grounded nodes).
//!
//! The analysis (a nested-dissection ordering with minimum-degree leaves, the
//! elimination tree and the pattern of L) depends only on the graph and is done once; each numeric
//! factorization then reuses it. Up-looking algorithm as in Davis, *Direct
//! Methods for Sparse Linear Systems* (SIAM 2006), §4; when the elimination
//! tree splits into two independent blocks of columns under its top (as the
//! nested dissection makes it), a large factor's two blocks are factored on
//! two threads, to the same bits as on one.

#[cfg(test)]
use std::cmp::Reverse;
#[cfg(test)]
use std::collections::BinaryHeap;

const NONE: usize = usize::MAX;

/// The fill-reducing ordering and the structure of L for one graph.
#[derive(Clone, Debug)]
pub struct Symbolic {
    n: usize,
    /// perm[new] = old
    perm: Vec<usize>,
    /// inv[old] = new
    inv: Vec<usize>,
    /// Upper triangle of the permuted matrix, by column (CSC): rows < column, then the diagonal.
    a_ptr: Vec<usize>,
    a_row: Vec<usize>,
    l_ptr: Vec<usize>,
    /// Row patterns of L (off-diagonal columns of each row, increasing), from the analysis.
    row_ptr: Vec<usize>,
    row_col: Vec<usize>,
    /// Two independent blocks of columns `[0, m)` and `[m, t)` (no column of
    /// the first is a descendant of one in the second), under the top
    /// `[t, n)`: their rows factor at the same time, on two threads. Only
    /// for factors large enough to pay for a thread.
    split: Option<(usize, usize)>,
}

/// Most vertices a graph may have: [`Cholesky`] keeps L's rows in 32 bits
/// (a hydraulic network this large would not fit in memory anyway).
pub const MAX_VERTICES: usize = u32::MAX as usize;

/// Nonzeros of L below which a factorization stays on one thread.
const PARALLEL_MIN_L_NNZ: usize = 40_000;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CholeskyError {
    #[error("matrix is not positive definite (pivot {pivot:.3e} at row {row})")]
    NotPositiveDefinite { row: usize, pivot: f64 },
}

impl Symbolic {
    /// Analyses the graph with `n` vertices and the given edges (self-loops and
    /// duplicates allowed; every vertex has a diagonal entry).
    ///
    /// # Panics
    /// When `n` exceeds [`MAX_VERTICES`] (L's rows are kept in 32 bits).
    pub fn new(n: usize, edges: &[(usize, usize)]) -> Self {
        assert!(n <= MAX_VERTICES, "{n} vertices: at most {MAX_VERTICES}");
        let mut adj: Vec<Vec<usize>> = vec![Vec::new(); n];
        for &(a, b) in edges {
            if a != b {
                adj[a].push(b);
                adj[b].push(a);
            }
        }
        for row in adj.iter_mut() {
            row.sort_unstable();
            row.dedup();
        }
        let perm = nested_dissection(&adj);
        let mut inv = vec![0; n];
        for (new, &old) in perm.iter().enumerate() {
            inv[old] = new;
        }
        // Upper triangle of P·A·Pᵀ by column: entry (i, j) with i ≤ j, rows
        // increasing (filled in increasing i), the diagonal last.
        let mut a_ptr = vec![0usize; n + 1];
        for (old, nbrs) in adj.iter().enumerate() {
            let j = inv[old];
            a_ptr[j + 1] = 1 + nbrs.iter().filter(|&&o| inv[o] < j).count();
        }
        for j in 0..n {
            a_ptr[j + 1] += a_ptr[j];
        }
        let mut fill = a_ptr.clone();
        let mut a_row = vec![0usize; a_ptr[n]];
        for (i, &old) in perm.iter().enumerate() {
            for &o in &adj[old] {
                let j = inv[o];
                if i < j {
                    a_row[fill[j]] = i;
                    fill[j] += 1;
                }
            }
        }
        for j in 0..n {
            a_row[fill[j]] = j;
        }
        // Elimination tree.
        let mut parent = vec![NONE; n];
        let mut ancestor = vec![NONE; n];
        for k in 0..n {
            for &r in &a_row[a_ptr[k]..a_ptr[k + 1]] {
                let mut i = r;
                while i != NONE && i < k {
                    let next = ancestor[i];
                    ancestor[i] = k;
                    if next == NONE {
                        parent[i] = k;
                    }
                    i = next;
                }
            }
        }
        // Column patterns of L (below the diagonal), children before their
        // parent: column j holds the rows k > j of A's row j and its
        // children's rows but j itself. Each column is read once, by its
        // parent: O(nonzeros of L).
        let mut child_ptr = vec![0usize; n + 1];
        for &p in &parent {
            if p != NONE {
                child_ptr[p + 1] += 1;
            }
        }
        for j in 0..n {
            child_ptr[j + 1] += child_ptr[j];
        }
        let mut child_fill = child_ptr.clone();
        let mut children = vec![0usize; child_ptr[n]];
        for (c, &p) in parent.iter().enumerate() {
            if p != NONE {
                children[child_fill[p]] = c;
                child_fill[p] += 1;
            }
        }
        // A's rows k > j of column j: the transpose of the upper triangle.
        let mut low_ptr = vec![0usize; n + 1];
        for k in 0..n {
            for &i in &a_row[a_ptr[k]..a_ptr[k + 1] - 1] {
                low_ptr[i + 1] += 1;
            }
        }
        for j in 0..n {
            low_ptr[j + 1] += low_ptr[j];
        }
        let mut low_fill = low_ptr.clone();
        let mut low_row = vec![0usize; low_ptr[n]];
        for k in 0..n {
            for &i in &a_row[a_ptr[k]..a_ptr[k + 1] - 1] {
                low_row[low_fill[i]] = k;
                low_fill[i] += 1;
            }
        }
        let mut col_ptr = vec![0usize; n + 1];
        let mut col_row: Vec<usize> = Vec::new();
        let mut mark = vec![NONE; n];
        for j in 0..n {
            mark[j] = j;
            for &k in &low_row[low_ptr[j]..low_ptr[j + 1]] {
                if mark[k] != j {
                    mark[k] = j;
                    col_row.push(k);
                }
            }
            for &c in &children[child_ptr[j]..child_ptr[j + 1]] {
                for x in col_ptr[c]..col_ptr[c + 1] {
                    let k = col_row[x];
                    if mark[k] != j {
                        mark[k] = j;
                        col_row.push(k);
                    }
                }
            }
            col_ptr[j + 1] = col_row.len();
        }
        let counts: Vec<usize> = (0..n).map(|j| 1 + col_ptr[j + 1] - col_ptr[j]).collect();
        // Row patterns: the transpose, filled in increasing column order.
        let mut row_ptr = vec![0usize; n + 1];
        for &k in &col_row {
            row_ptr[k + 1] += 1;
        }
        for k in 0..n {
            row_ptr[k + 1] += row_ptr[k];
        }
        let mut row_fill = row_ptr.clone();
        let mut row_col = vec![0usize; col_row.len()];
        for j in 0..n {
            for &k in &col_row[col_ptr[j]..col_ptr[j + 1]] {
                row_col[row_fill[k]] = j;
                row_fill[k] += 1;
            }
        }
        let mut l_ptr = vec![0; n + 1];
        for j in 0..n {
            l_ptr[j + 1] = l_ptr[j] + counts[j];
        }
        let split = if l_ptr[n] >= PARALLEL_MIN_L_NNZ {
            independent_blocks(&parent, &row_ptr)
        } else {
            None
        };
        Self {
            n,
            perm,
            inv,
            a_ptr,
            a_row,
            l_ptr,
            row_ptr,
            row_col,
            split,
        }
    }

    /// Position in the permuted upper-triangular value array of entry (old_i, old_j).
    pub fn slot(&self, old_i: usize, old_j: usize) -> Option<usize> {
        let (mut i, mut j) = (self.inv[old_i], self.inv[old_j]);
        if i > j {
            std::mem::swap(&mut i, &mut j);
        }
        let rows = &self.a_row[self.a_ptr[j]..self.a_ptr[j + 1]];
        rows.binary_search(&i).ok().map(|p| self.a_ptr[j] + p)
    }

    /// y = A·x in the permuted numbering, A given by its upper-triangle `values`.
    pub fn mul_permuted(&self, values: &[f64], x: &[f64], y: &mut [f64]) {
        y.iter_mut().for_each(|v| *v = 0.0);
        for j in 0..self.n {
            let (lo, hi) = (self.a_ptr[j], self.a_ptr[j + 1]);
            let xj = x[j];
            let mut acc = 0.0;
            for (&i, &v) in self.a_row[lo..hi].iter().zip(&values[lo..hi]) {
                if i == j {
                    acc += v * xj;
                } else {
                    y[i] += v * xj;
                    acc += v * x[i];
                }
            }
            y[j] += acc;
        }
    }

    /// perm[new] = old.
    pub fn perm(&self) -> &[usize] {
        &self.perm
    }

    /// Number of unknowns.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Number of stored values of the matrix (upper triangle).
    pub fn nnz(&self) -> usize {
        self.a_row.len()
    }

    /// Number of nonzeros in L.
    pub fn l_nnz(&self) -> usize {
        self.l_ptr[self.n]
    }
}

/// Two blocks of columns whose rows can be factored independently, below the
/// top of the elimination tree: `t` is the lowest column of the chain the
/// tree ends in (a nested dissection's last separator), `[0, m)` and
/// `[m, t)` the best balanced split (by the rows' lengths) with no column of
/// the first whose parent is in the second. None when no split leaves each
/// block a quarter of the work.
fn independent_blocks(parent: &[usize], row_ptr: &[usize]) -> Option<(usize, usize)> {
    let n = parent.len();
    if n < 3 {
        return None;
    }
    let mut children = vec![0usize; n];
    for &p in parent {
        if p != NONE {
            children[p] += 1;
        }
    }
    let mut t = n - 1;
    while t > 0 && children[t] == 1 && parent[t - 1] == t {
        t -= 1;
    }
    // Work of a row: its length (plus one), a proxy.
    let work = |k: usize| row_ptr[k + 1] - row_ptr[k] + 1;
    let total: usize = (0..t).map(work).sum();
    let (mut best, mut best_gap) = (None, usize::MAX);
    let (mut reach, mut done) = (0usize, 0usize);
    for m in 1..t {
        let j = m - 1;
        done += work(j);
        if parent[j] != NONE && parent[j] < t {
            reach = reach.max(parent[j]);
        }
        // Valid when no column below m has its parent in [m, t).
        if reach < m {
            let gap = done.abs_diff(total - done);
            if gap < best_gap {
                best_gap = gap;
                best = Some(m);
            }
        }
    }
    let m = best?;
    let low: usize = (0..m).map(work).sum();
    (4 * low.min(total - low) >= total).then_some((m, t))
}

/// Nonzero pattern of row k of L (excluding the diagonal), left in `stack`:
/// the reference the analysis's column-by-column patterns are tested against.
#[cfg(test)]
fn ereach(
    a_ptr: &[usize],
    a_row: &[usize],
    parent: &[usize],
    k: usize,
    mark: &mut [usize],
    stack: &mut Vec<usize>,
) {
    stack.clear();
    mark[k] = k;
    for &r in &a_row[a_ptr[k]..a_ptr[k + 1]] {
        let mut i = r;
        if i >= k {
            continue;
        }
        while mark[i] != k {
            stack.push(i);
            mark[i] = k;
            i = parent[i];
            if i == NONE {
                break;
            }
        }
    }
    // Increasing column index is a topological order of the elimination tree
    // (a parent's index exceeds its child's): every column is finished before
    // the columns it updates.
    stack.sort_unstable();
}

/// Subsets at most this large are ordered by minimum degree instead of dissected.
/// (Ordered on bit sets of 128.)
const DISSECTION_LEAF: usize = 96;
const _: () = assert!(DISSECTION_LEAF <= 128);

/// Graphs from which the two halves of the first dissection are ordered on
/// two threads.
const PARALLEL_MIN_VERTICES: usize = 4_000;

/// Nested dissection by breadth-first level structures (George's automatic
/// nested dissection): from a pseudo-peripheral vertex, the middle level
/// (trimmed to the vertices that touch the next level) separates the rest into
/// two halves, which are ordered first, recursively; the separator comes last.
/// Small subsets are ordered by [`minimum_degree`]. O(n log n), against the
/// explicit minimum-degree ordering's cost that grows with the fill. On a
/// large graph the two halves of the first dissection are ordered on two
/// threads: each subset's ordering depends only on its own vertices, so the
/// order is the same as on one.
fn nested_dissection(adj: &[Vec<usize>]) -> Vec<usize> {
    let n = adj.len();
    let mut here = Dissector::new(adj);
    let mut tasks = vec![Task::Dissect((0..n).collect())];
    if n >= PARALLEL_MIN_VERTICES {
        if let Some(Task::Dissect(all)) = tasks.pop() {
            here.step(all, &mut tasks);
        }
        // The stack's top two subsets are ordered one after the other, the
        // first (on top) fully before the second: here and on a second thread.
        let len = tasks.len();
        if len >= 2
            && matches!(tasks[len - 1], Task::Dissect(_))
            && matches!(tasks[len - 2], Task::Dissect(_))
        {
            let (Some(Task::Dissect(first)), Some(Task::Dissect(second))) =
                (tasks.pop(), tasks.pop())
            else {
                unreachable!("both are Dissect")
            };
            let other = std::thread::scope(|scope| {
                let other = scope.spawn(|| {
                    let mut there = Dissector::new(adj);
                    there.run(vec![Task::Dissect(second)]);
                    there.order
                });
                here.run(vec![Task::Dissect(first)]);
                other.join()
            });
            match other {
                Ok(order) => here.order.extend_from_slice(&order),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    }
    here.run(tasks);
    here.order
}

enum Task {
    Dissect(Vec<usize>),
    Emit(Vec<usize>),
}

/// The working state of [`nested_dissection`] over one graph.
struct Dissector<'a> {
    adj: &'a [Vec<usize>],
    order: Vec<usize>,
    /// Label of the subset each vertex is in now; a fresh label per subset.
    label: Vec<usize>,
    next_label: usize,
    level: Vec<usize>,
    queue: Vec<usize>,
    local: Vec<usize>,
    seen: Vec<bool>,
}

impl<'a> Dissector<'a> {
    fn new(adj: &'a [Vec<usize>]) -> Self {
        let n = adj.len();
        Self {
            adj,
            order: Vec::with_capacity(n),
            label: vec![0; n],
            next_label: 1,
            level: vec![0; n],
            queue: Vec::with_capacity(n),
            local: vec![NONE; n],
            seen: vec![false; n],
        }
    }

    /// Works through `tasks` (a stack), appending to the order.
    fn run(&mut self, mut tasks: Vec<Task>) {
        while let Some(task) = tasks.pop() {
            match task {
                Task::Emit(v) => self.order.extend_from_slice(&v),
                Task::Dissect(v) => self.step(v, &mut tasks),
            }
        }
    }

    /// BFS within the subset `lab` from `root`: fills `queue` in level order,
    /// `level`, and returns the height.
    fn bfs(&mut self, root: usize, lab: usize) -> usize {
        let (adj, label, level, queue, seen) = (
            self.adj,
            &self.label,
            &mut self.level,
            &mut self.queue,
            &mut self.seen,
        );
        queue.clear();
        queue.push(root);
        seen[root] = true;
        level[root] = 0;
        let mut head = 0;
        while head < queue.len() {
            let v = queue[head];
            head += 1;
            for &w in &adj[v] {
                if label[w] == lab && !seen[w] {
                    seen[w] = true;
                    level[w] = level[v] + 1;
                    queue.push(w);
                }
            }
        }
        for &v in queue.iter() {
            seen[v] = false;
        }
        queue.last().map_or(0, |&v| level[v])
    }

    /// Orders a small subset, or splits it and pushes its parts.
    fn step(&mut self, verts: Vec<usize>, tasks: &mut Vec<Task>) {
        let adj = self.adj;
        if verts.is_empty() {
            return;
        }
        let lab = self.next_label;
        self.next_label += 1;
        for &v in &verts {
            self.label[v] = lab;
        }
        if verts.len() <= DISSECTION_LEAF {
            // Minimum degree on the induced subgraph.
            for (i, &v) in verts.iter().enumerate() {
                self.local[v] = i;
            }
            let sub: Vec<u128> = verts
                .iter()
                .map(|&v| {
                    adj[v]
                        .iter()
                        .filter(|&&w| self.label[w] == lab)
                        .fold(0u128, |row, &w| row | 1u128 << self.local[w])
                })
                .collect();
            self.order
                .extend(minimum_degree_small(sub).into_iter().map(|i| verts[i]));
            return;
        }
        // Pseudo-peripheral root: repeat BFS from a farthest vertex of least degree.
        let mut root = verts[0];
        let mut height = self.bfs(root, lab);
        if self.queue.len() < verts.len() {
            // Not connected: dissect the reached component and the rest apart.
            let reached = self.queue.clone();
            for &v in &reached {
                self.label[v] = NONE;
            }
            let rest: Vec<usize> = verts
                .iter()
                .copied()
                .filter(|&v| self.label[v] == lab)
                .collect();
            tasks.push(Task::Dissect(rest));
            tasks.push(Task::Dissect(reached));
            return;
        }
        for _ in 0..4 {
            let far = self
                .queue
                .iter()
                .copied()
                .filter(|&v| self.level[v] == height)
                .min_by_key(|&v| adj[v].len())
                .unwrap_or(root);
            let h = self.bfs(far, lab);
            if h <= height {
                self.bfs(root, lab);
                break;
            }
            root = far;
            height = h;
        }
        if height < 2 {
            tasks.push(Task::Emit(self.queue.clone()));
            return;
        }
        // Middle level: the first whose levels up to it hold half the vertices.
        let mut mid = 1;
        let mut count = 0;
        for &v in self.queue.iter() {
            count += 1;
            if 2 * count >= verts.len() {
                mid = self.level[v].clamp(1, height - 1);
                break;
            }
        }
        let (mut low, mut high, mut sep) = (Vec::new(), Vec::new(), Vec::new());
        for &v in self.queue.iter() {
            let l = self.level[v];
            if l < mid {
                low.push(v);
            } else if l > mid {
                high.push(v);
            } else if adj[v]
                .iter()
                .any(|&w| self.label[w] == lab && self.level[w] == mid + 1)
            {
                sep.push(v);
            } else {
                low.push(v);
            }
        }
        tasks.push(Task::Emit(sep));
        tasks.push(Task::Dissect(high));
        tasks.push(Task::Dissect(low));
    }
}

/// [`minimum_degree`] of a graph of at most 128 vertices given as bit rows
/// (the same order: the least degree, ties by index), on bit sets.
fn minimum_degree_small(mut g: Vec<u128>) -> Vec<usize> {
    let n = g.len();
    debug_assert!(n <= 128);
    let mut left: u128 = if n == 128 {
        u128::MAX
    } else {
        (1u128 << n) - 1
    };
    let mut order = Vec::with_capacity(n);
    while left != 0 {
        let (mut best, mut best_deg) = (0, u32::MAX);
        let mut rest = left;
        while rest != 0 {
            let v = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            let d = g[v].count_ones();
            if d < best_deg {
                (best, best_deg) = (v, d);
            }
        }
        let v = best;
        left &= !(1u128 << v);
        order.push(v);
        let nbrs = g[v];
        g[v] = 0;
        // Each neighbour u loses v and gains every other neighbour of v.
        let mut rest = nbrs;
        while rest != 0 {
            let u = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            g[u] = (g[u] | nbrs) & !(1u128 << u) & !(1u128 << v);
        }
    }
    order
}

/// Minimum-degree ordering on the explicit elimination graph (ties by index):
/// the reference `minimum_degree_small` is tested against.
#[cfg(test)]
fn minimum_degree(adj: &[Vec<usize>]) -> Vec<usize> {
    let n = adj.len();
    let mut g: Vec<Vec<usize>> = adj.to_vec();
    let mut eliminated = vec![false; n];
    let mut heap: BinaryHeap<Reverse<(usize, usize)>> =
        (0..n).map(|v| Reverse((g[v].len(), v))).collect();
    let mut order = Vec::with_capacity(n);
    let mut merged = Vec::new();
    while let Some(Reverse((deg, v))) = heap.pop() {
        if eliminated[v] || deg != g[v].len() {
            continue;
        }
        eliminated[v] = true;
        order.push(v);
        let nbrs = std::mem::take(&mut g[v]);
        for &u in &nbrs {
            // u loses v and gains every other neighbour of v.
            merged.clear();
            let (a, b) = (&g[u], &nbrs);
            let (mut i, mut j) = (0, 0);
            while i < a.len() || j < b.len() {
                let x = match (a.get(i), b.get(j)) {
                    (Some(&x), Some(&y)) if x == y => {
                        i += 1;
                        j += 1;
                        x
                    }
                    (Some(&x), Some(&y)) if x < y => {
                        i += 1;
                        x
                    }
                    (Some(_), Some(&y)) => {
                        j += 1;
                        y
                    }
                    (Some(&x), None) => {
                        i += 1;
                        x
                    }
                    (None, Some(&y)) => {
                        j += 1;
                        y
                    }
                    (None, None) => break,
                };
                if x != u && x != v {
                    merged.push(x);
                }
            }
            std::mem::swap(&mut g[u], &mut merged);
            heap.push(Reverse((g[u].len(), u)));
        }
    }
    order
}

/// A numeric factorization L·Lᵀ = P·A·Pᵀ on a [`Symbolic`] structure.
///
/// Supernodal and left-looking: consecutive columns with the same pattern
/// below their diagonal block (a nested dissection's separators, mostly) are
/// one supernode, factored as a dense trapezoid; each supernode first takes
/// the updates of the earlier supernodes whose rows reach it, a dense block
/// product per target column, scattered once. The entries stay in L's
/// compressed columns (a supernode's columns are contiguous rows of one
/// list), so the triangular solves read them as before. Against a
/// column-at-a-time up-looking factorization this does the same
/// multiply-adds on contiguous memory, and the indirect scatter once per
/// descendant supernode instead of once per descendant column.
#[derive(Clone, Debug)]
pub struct Cholesky {
    /// Row of each entry of L, by column (the diagonal first, then rows
    /// increasing). 32 bits a row: the factorization and the triangular
    /// solves stream through L and are bound by memory.
    l_row: Vec<u32>,
    l_val: Vec<f64>,
    /// Supernode `s` is the columns `sn_ptr[s]..sn_ptr[s + 1]`.
    sn_ptr: Vec<usize>,
    /// Updates into supernode `s`: `upd[upd_ptr[s]..upd_ptr[s + 1]]`, each
    /// (descendant supernode, first and end position in its row list of the
    /// rows that are columns of `s`), descendants in increasing order.
    upd_ptr: Vec<usize>,
    upd: Vec<(u32, u32, u32)>,
    /// A's lower entries by column of L: (slot in the values, position in L).
    a_ptr: Vec<usize>,
    a_map: Vec<(u32, u32)>,
    /// Supernodes of the split's blocks: `[0, s_m)`, `[s_m, s_t)`, top.
    sn_split: Option<(usize, usize)>,
    /// Per thread: position of each row in the current supernode's row
    /// list, and a dense column of updates.
    scratch: [Scratch; 2],
    /// Fill pointers of the column-at-a-time factorization of small factors.
    next: Vec<usize>,
    work: Vec<f64>,
}

/// Nonzeros of L below which a factor is computed a column at a time
/// (up-looking): a small factor's supernodes are too narrow to repay their
/// bookkeeping (at 529 junctions the supernodal one took a quarter more
/// instructions).
const SUPERNODAL_MIN_L_NNZ: usize = 40_000;

#[derive(Clone, Debug)]
struct Scratch {
    pos: Vec<u32>,
    tmp: Vec<f64>,
}

impl Cholesky {
    pub fn new(s: &Symbolic) -> Self {
        let n = s.n;
        let mut l_row = vec![0u32; s.l_nnz()];
        // A's entry (i, k), i ≤ k, is L's (k, i): row k of column i. By
        // column of L, where each goes.
        let mut a_ptr = vec![0usize; n + 1];
        for k in 0..n {
            for &i in &s.a_row[s.a_ptr[k]..s.a_ptr[k + 1]] {
                a_ptr[i + 1] += 1;
            }
        }
        for j in 0..n {
            a_ptr[j + 1] += a_ptr[j];
        }
        let mut a_fill = a_ptr.clone();
        let mut a_map = vec![(0u32, 0u32); a_ptr[n]];
        let mut fill: Vec<usize> = s.l_ptr[..n].to_vec();
        // Position of row k in each column of its pattern, while row k is placed.
        let mut placed = vec![0usize; n];
        // Row k enters each column of its pattern in increasing k, after the
        // column's diagonal. `n` fits in 32 bits ([`Symbolic::new`]).
        for k in 0..n {
            let row = k as u32;
            placed[k] = fill[k];
            l_row[fill[k]] = row;
            fill[k] += 1;
            for &i in &s.row_col[s.row_ptr[k]..s.row_ptr[k + 1]] {
                placed[i] = fill[i];
                l_row[fill[i]] = row;
                fill[i] += 1;
            }
            // A's column k lies within row k's pattern of L.
            for slot in s.a_ptr[k]..s.a_ptr[k + 1] {
                let i = s.a_row[slot];
                a_map[a_fill[i]] = (slot as u32, placed[i] as u32);
                a_fill[i] += 1;
            }
        }
        let count = |j: usize| s.l_ptr[j + 1] - s.l_ptr[j];
        // Fundamental supernodes: column j joins j − 1's when it is j − 1's
        // parent, has no other child, and has the same pattern below (one
        // entry fewer: a column's pattern below its parent is within the
        // parent's). They depend on the tree alone, so a factor has the same
        // supernodes, hence the same bits, with or without the split; and
        // never straddle its boundaries (the top's first column has two
        // children), which are cut here all the same.
        let mut children = vec![0usize; n];
        for j in 0..n {
            if count(j) > 1 {
                children[l_row[s.l_ptr[j] + 1] as usize] += 1;
            }
        }
        let cuts = s.split.map_or([NONE, NONE], |(m, t)| [m, t]);
        let mut sn_ptr = vec![0usize];
        for j in 1..n {
            let joins = count(j - 1) == count(j) + 1
                && count(j - 1) > 1
                && l_row[s.l_ptr[j - 1] + 1] as usize == j
                && children[j] == 1
                && !cuts.contains(&j);
            if !joins {
                sn_ptr.push(j);
            }
        }
        if n > 0 {
            sn_ptr.push(n);
        }
        let nsn = sn_ptr.len().saturating_sub(1);
        let mut sn_of = vec![0u32; n];
        for sn in 0..nsn {
            sn_of[sn_ptr[sn]..sn_ptr[sn + 1]].fill(sn as u32);
        }
        // Each supernode's rows below its diagonal block, in runs by the
        // supernode they fall in: one update each.
        let mut pairs: Vec<(u32, u32, u32, u32)> = Vec::new();
        for d in 0..nsn {
            let (f, w) = (sn_ptr[d], sn_ptr[d + 1] - sn_ptr[d]);
            let rows = &l_row[s.l_ptr[f]..s.l_ptr[f + 1]];
            let mut t = w;
            while t < rows.len() {
                let target = sn_of[rows[t] as usize];
                let t0 = t;
                while t < rows.len() && sn_of[rows[t] as usize] == target {
                    t += 1;
                }
                pairs.push((target, d as u32, t0 as u32, t as u32));
            }
        }
        let mut upd_ptr = vec![0usize; nsn + 1];
        for &(target, ..) in &pairs {
            upd_ptr[target as usize + 1] += 1;
        }
        for sn in 0..nsn {
            upd_ptr[sn + 1] += upd_ptr[sn];
        }
        let mut upd_fill = upd_ptr.clone();
        let mut upd = vec![(0u32, 0u32, 0u32); pairs.len()];
        // Pairs come in increasing descendant: each list stays in that order.
        for &(target, d, t0, t1) in &pairs {
            upd[upd_fill[target as usize]] = (d, t0, t1);
            upd_fill[target as usize] += 1;
        }
        let sn_split = s.split.map(|(m, t)| {
            (
                sn_of[m] as usize,
                if t < n { sn_of[t] as usize } else { nsn },
            )
        });
        let longest = (0..nsn).map(|sn| count(sn_ptr[sn])).max().unwrap_or(0);
        let scratch = Scratch {
            pos: vec![0; n],
            tmp: vec![0.0; longest],
        };
        Self {
            l_row,
            l_val: vec![0.0; s.l_nnz()],
            sn_ptr,
            upd_ptr,
            upd,
            a_ptr,
            a_map,
            sn_split,
            scratch: [scratch.clone(), scratch],
            next: vec![0; n],
            work: vec![0.0; n],
        }
    }

    /// Factors the matrix whose upper-triangle values (in [`Symbolic::slot`] order) are `values`.
    /// With a split of the analysis, the two independent blocks' supernodes
    /// are factored on two threads, then the top's: every supernode does
    /// exactly what it would on one thread, so the factor is the same to the
    /// bit.
    pub fn factor(&mut self, s: &Symbolic, values: &[f64]) -> Result<(), CholeskyError> {
        if s.l_nnz() < SUPERNODAL_MIN_L_NNZ {
            self.factor_up_looking(s, values)
        } else {
            self.factor_supernodal(s, values)
        }
    }

    fn factor_supernodal(&mut self, s: &Symbolic, values: &[f64]) -> Result<(), CholeskyError> {
        let nsn = self.sn_ptr.len().saturating_sub(1);
        let Self {
            l_row,
            l_val,
            sn_ptr,
            upd_ptr,
            upd,
            a_ptr,
            a_map,
            sn_split,
            scratch,
            ..
        } = self;
        let plan = Plan {
            s,
            values,
            l_row,
            sn_ptr,
            upd_ptr,
            upd,
            a_ptr,
            a_map,
        };
        let [s0, s1] = scratch;
        let Some((s_m, s_t)) = *sn_split else {
            return plan.factor(0..nsn, l_val, 0, s0);
        };
        let (p_m, p_t) = (s.l_ptr[sn_ptr[s_m]], s.l_ptr[sn_ptr[s_t]]);
        let (low, high) = l_val[..p_t].split_at_mut(p_m);
        let (a, b) = std::thread::scope(|scope| {
            let other = scope.spawn(|| plan.factor(s_m..s_t, high, p_m, s1));
            let here = plan.factor(0..s_m, low, 0, s0);
            (here, other.join())
        });
        a?;
        match b {
            Ok(r) => r?,
            // A panic on the other thread is a bug; show it as ours.
            Err(panic) => std::panic::resume_unwind(panic),
        }
        plan.factor(s_t..nsn, l_val, 0, s0)
    }

    /// Up-looking factorization, one row of L at a time (Davis §4.8): row
    /// k from the triangular solve with the rows above it, then its
    /// diagonal. For small factors, on one thread.
    fn factor_up_looking(&mut self, s: &Symbolic, values: &[f64]) -> Result<(), CholeskyError> {
        let Self {
            l_row,
            l_val,
            next,
            scratch,
            ..
        } = self;
        let x = &mut scratch[0].tmp;
        x.resize(s.n, 0.0);
        next.copy_from_slice(&s.l_ptr[..s.n]);
        for k in 0..s.n {
            let col = s.a_ptr[k]..s.a_ptr[k + 1];
            for (&row, &v) in s.a_row[col.clone()].iter().zip(&values[col]) {
                x[row] = v;
            }
            let mut d = x[k];
            x[k] = 0.0;
            for &i in &s.row_col[s.row_ptr[k]..s.row_ptr[k + 1]] {
                let start = s.l_ptr[i];
                let lki = x[i] / l_val[start];
                x[i] = 0.0;
                let end = next[i];
                for (&r, &v) in l_row[start + 1..end].iter().zip(&l_val[start + 1..end]) {
                    x[r as usize] -= v * lki;
                }
                d -= lki * lki;
                l_val[end] = lki;
                next[i] += 1;
            }
            if d <= 0.0 || !d.is_finite() {
                return Err(CholeskyError::NotPositiveDefinite { row: k, pivot: d });
            }
            l_val[next[k]] = d.sqrt();
            next[k] += 1;
        }
        Ok(())
    }

    /// Solves A·x = b in the original (unpermuted) numbering; `b` is overwritten by x.
    pub fn solve(&mut self, s: &Symbolic, b: &mut [f64]) {
        let n = s.n;
        for new in 0..n {
            self.work[new] = b[s.perm[new]];
        }
        let mut work = std::mem::take(&mut self.work);
        self.solve_permuted(s, &mut work);
        self.work = work;
        for new in 0..n {
            b[s.perm[new]] = self.work[new];
        }
    }

    /// Solves L·Lᵀ·x = b in the permuted numbering, in place.
    pub fn solve_permuted(&self, s: &Symbolic, work: &mut [f64]) {
        let n = s.n;
        // Column by column: a supernodal solve (dense diagonal blocks, rows
        // below gathered once) measured no faster here, the columns being
        // read once either way.
        // L·y = b (columns: the diagonal is first in each).
        for j in 0..n {
            let (start, end) = (s.l_ptr[j], s.l_ptr[j + 1]);
            work[j] /= self.l_val[start];
            let yj = work[j];
            for (&r, &v) in self.l_row[start + 1..end]
                .iter()
                .zip(&self.l_val[start + 1..end])
            {
                work[r as usize] -= v * yj;
            }
        }
        // Lᵀ·x = y
        for j in (0..n).rev() {
            let (start, end) = (s.l_ptr[j], s.l_ptr[j + 1]);
            let mut v = work[j];
            for (&r, &l) in self.l_row[start + 1..end]
                .iter()
                .zip(&self.l_val[start + 1..end])
            {
                v -= l * work[r as usize];
            }
            work[j] = v / self.l_val[start];
        }
    }
}

/// What every supernode of a factorization reads: the analysis, the
/// matrix's values and the supernodal structure.
struct Plan<'a> {
    s: &'a Symbolic,
    values: &'a [f64],
    l_row: &'a [u32],
    sn_ptr: &'a [usize],
    upd_ptr: &'a [usize],
    upd: &'a [(u32, u32, u32)],
    a_ptr: &'a [usize],
    a_map: &'a [(u32, u32)],
}

impl Plan<'_> {
    /// Factors the supernodes `sns` into `l_val`, which holds L's entries
    /// from position `base_p` on; the supernodes read only their own
    /// descendants', which are there too.
    fn factor(
        &self,
        sns: std::ops::Range<usize>,
        l_val: &mut [f64],
        base_p: usize,
        scratch: &mut Scratch,
    ) -> Result<(), CholeskyError> {
        let l_ptr = &self.s.l_ptr;
        // Position of column j's diagonal in `l_val`.
        let at = |j: usize| l_ptr[j] - base_p;
        for sn in sns {
            let (f, e) = (self.sn_ptr[sn], self.sn_ptr[sn + 1]);
            let rows = &self.l_row[l_ptr[f]..l_ptr[f + 1]];
            let h = rows.len();
            // A's entries; row rows[t] of column j (t ≥ j − f) is at
            // at(j) + t − (j − f).
            l_val[at(f)..l_ptr[e] - base_p].fill(0.0);
            for j in f..e {
                for &(slot, p) in &self.a_map[self.a_ptr[j]..self.a_ptr[j + 1]] {
                    l_val[p as usize - base_p] = self.values[slot as usize];
                }
            }
            for (t, &r) in rows.iter().enumerate() {
                scratch.pos[r as usize] = t as u32;
            }
            // The updates of each descendant supernode d, per target
            // column c of this one: Σ over d's columns of L[·, col]·L[c, col],
            // summed densely, then scattered once.
            for &(d, t0, t1) in &self.upd[self.upd_ptr[sn]..self.upd_ptr[sn + 1]] {
                let (fd, ed) = (self.sn_ptr[d as usize], self.sn_ptr[d as usize + 1]);
                let d_rows = &self.l_row[l_ptr[fd]..l_ptr[fd + 1]];
                let hd = d_rows.len();
                for tc in t0 as usize..t1 as usize {
                    let len = hd - tc;
                    let c = d_rows[tc] as usize;
                    let c_base = at(c) - (c - f);
                    if ed - fd == 1 {
                        // One column: nothing to sum, straight to the target
                        // (the same products, subtracted in the same order).
                        let start = at(fd) + tc;
                        let lc = l_val[start];
                        for t in 0..len {
                            let v = l_val[start + t] * lc;
                            let r = d_rows[tc + t] as usize;
                            l_val[c_base + scratch.pos[r] as usize] -= v;
                        }
                        continue;
                    }
                    let tmp = &mut scratch.tmp[..len];
                    tmp.fill(0.0);
                    for col in fd..ed {
                        let start = at(col) + tc - (col - fd);
                        let lc = l_val[start];
                        for (x, &v) in tmp.iter_mut().zip(&l_val[start..start + len]) {
                            *x += v * lc;
                        }
                    }
                    for (&x, &r) in tmp.iter().zip(&d_rows[tc..]) {
                        l_val[c_base + scratch.pos[r as usize] as usize] -= x;
                    }
                }
            }
            // The dense trapezoid: each column takes its supernode's earlier
            // columns' updates, then is scaled by its diagonal.
            for j in f..e {
                let jj = j - f;
                let (done, rest) = l_val.split_at_mut(at(j));
                let col_j = &mut rest[..h - jj];
                for i in f..j {
                    let ii = i - f;
                    let col_i = &done[at(i) + (jj - ii)..at(i) + (h - ii)];
                    let lji = col_i[0];
                    for (x, &v) in col_j.iter_mut().zip(col_i) {
                        *x -= v * lji;
                    }
                }
                let d = col_j[0];
                if d <= 0.0 || !d.is_finite() {
                    return Err(CholeskyError::NotPositiveDefinite { row: j, pivot: d });
                }
                let d = d.sqrt();
                col_j[0] = d;
                for x in &mut col_j[1..] {
                    *x /= d;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dense reference: solves the same system by Gaussian elimination.
    fn dense_solve(a: &[Vec<f64>], b: &[f64]) -> Vec<f64> {
        let n = b.len();
        let mut m: Vec<Vec<f64>> = a
            .iter()
            .zip(b)
            .map(|(r, &bi)| [r.clone(), vec![bi]].concat())
            .collect();
        for c in 0..n {
            let piv = (c..n)
                .max_by(|&i, &j| m[i][c].abs().total_cmp(&m[j][c].abs()))
                .unwrap();
            m.swap(c, piv);
            let pivot_row = m[c].clone();
            for (r, row) in m.iter_mut().enumerate() {
                if r != c {
                    let f = row[c] / pivot_row[c];
                    for (x, p) in row.iter_mut().zip(&pivot_row).skip(c) {
                        *x -= f * p;
                    }
                }
            }
        }
        (0..n).map(|i| m[i][n] / m[i][i]).collect()
    }

    #[test]
    fn solves_a_grounded_grid_laplacian_like_a_dense_solver() {
        // 6×6 grid with weights, grounded at vertex 0 by a heavier diagonal.
        let side = 6;
        let n = side * side;
        let mut edges = Vec::new();
        let mut a = vec![vec![0.0; n]; n];
        for r in 0..side {
            for c in 0..side {
                let v = r * side + c;
                for (r2, c2) in [(r, c + 1), (r + 1, c)] {
                    if r2 < side && c2 < side {
                        let u = r2 * side + c2;
                        let w = 1.0 + ((v * 7 + u * 3) % 5) as f64;
                        edges.push((v, u));
                        a[v][v] += w;
                        a[u][u] += w;
                        a[v][u] -= w;
                        a[u][v] -= w;
                    }
                }
            }
        }
        a[0][0] += 3.0;
        a[n - 1][n - 1] += 2.0;
        let s = Symbolic::new(n, &edges);
        let mut values = vec![0.0; s.nnz()];
        for i in 0..n {
            for j in 0..n {
                if i <= j && a[i][j] != 0.0 {
                    values[s.slot(i, j).unwrap()] = a[i][j];
                }
            }
        }
        let mut ch = Cholesky::new(&s);
        ch.factor(&s, &values).unwrap();
        let b: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
        let mut x = b.clone();
        ch.solve(&s, &mut x);
        let want = dense_solve(&a, &b);
        for i in 0..n {
            assert!(
                (x[i] - want[i]).abs() < 1e-10,
                "{i}: {} vs {}",
                x[i],
                want[i]
            );
        }
        // The ordering keeps fill well below a dense factor.
        assert!(s.l_nnz() < n * n / 4, "fill {}", s.l_nnz());
    }

    #[test]
    fn two_independent_blocks_are_ordered_and_factored_on_two_threads_to_the_same_bits() {
        // Two 60×60 grids joined by one edge (the design calculation's supply
        // and return sides, joined by a pump), grounded at one corner.
        let side = 60;
        let n = 2 * side * side;
        let mut edges = Vec::new();
        let mut weights = Vec::new();
        for half in 0..2 {
            for r in 0..side {
                for c in 0..side {
                    let v = half * side * side + r * side + c;
                    for (r2, c2) in [(r, c + 1), (r + 1, c)] {
                        if r2 < side && c2 < side {
                            let u = half * side * side + r2 * side + c2;
                            edges.push((v, u));
                            weights.push(1.0 + ((v * 7 + u * 3) % 5) as f64);
                        }
                    }
                }
            }
        }
        edges.push((side * side - 1, n - 1));
        weights.push(2.5);
        // The ordering on two threads is the one on one.
        let mut adj = vec![Vec::new(); n];
        for &(a, b) in &edges {
            adj[a].push(b);
            adj[b].push(a);
        }
        for row in adj.iter_mut() {
            row.sort_unstable();
        }
        assert!(n >= PARALLEL_MIN_VERTICES);
        let mut one = Dissector::new(&adj);
        one.run(vec![Task::Dissect((0..n).collect())]);
        assert_eq!(nested_dissection(&adj), one.order);
        let s = Symbolic::new(n, &edges);
        let (m, t) = s.split.expect("two blocks");
        assert!(m > n / 4 && t - m > n / 4 && t > n * 9 / 10, "{m} {t}");
        let mut values = vec![0.0; s.nnz()];
        for (&(a, b), &w) in edges.iter().zip(&weights) {
            values[s.slot(a, a).unwrap()] += w;
            values[s.slot(b, b).unwrap()] += w;
            values[s.slot(a, b).unwrap()] -= w;
        }
        values[s.slot(0, 0).unwrap()] += 3.0;
        let mut two = Cholesky::new(&s);
        two.factor(&s, &values).unwrap();
        let one_s = Symbolic {
            split: None,
            ..s.clone()
        };
        let mut one = Cholesky::new(&one_s);
        one.factor(&one_s, &values).unwrap();
        assert_eq!(two.l_row, one.l_row);
        assert!(
            two.l_val
                .iter()
                .zip(&one.l_val)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
        // And it solves: A·x = b back.
        let b: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
        let mut x = b.clone();
        two.solve(&s, &mut x);
        let mut ax = vec![0.0; n];
        for (&(a, c), &w) in edges.iter().zip(&weights) {
            ax[a] += w * (x[a] - x[c]);
            ax[c] += w * (x[c] - x[a]);
        }
        ax[0] += 3.0 * x[0];
        for i in 0..n {
            assert!((ax[i] - b[i]).abs() < 1e-9, "{i}: {} vs {}", ax[i], b[i]);
        }
    }

    #[test]
    fn row_patterns_are_those_of_each_rows_elimination_reach() {
        // A grid, and a seeded random graph with duplicate edges and loops.
        let mut graphs = Vec::new();
        let side = 30;
        let mut grid = Vec::new();
        for r in 0..side {
            for c in 0..side {
                if c + 1 < side {
                    grid.push((r * side + c, r * side + c + 1));
                }
                if r + 1 < side {
                    grid.push((r * side + c, (r + 1) * side + c));
                }
            }
        }
        graphs.push((side * side, grid));
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move |n: usize| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
        };
        let n = 700;
        let random: Vec<(usize, usize)> = (0..2_000).map(|_| (next(n), next(n))).collect();
        graphs.push((n, random));
        for (n, edges) in graphs {
            let s = Symbolic::new(n, &edges);
            let (mut mark, mut stack) = (vec![NONE; n], Vec::new());
            let parent: Vec<usize> = (0..n)
                .map(|j| {
                    // The parent of j is the first row below it in its column of L.
                    (j + 1..n)
                        .find(|&k| s.row_col[s.row_ptr[k]..s.row_ptr[k + 1]].contains(&j))
                        .unwrap_or(NONE)
                })
                .collect();
            for k in 0..n {
                ereach(&s.a_ptr, &s.a_row, &parent, k, &mut mark, &mut stack);
                assert_eq!(
                    &s.row_col[s.row_ptr[k]..s.row_ptr[k + 1]],
                    &stack[..],
                    "row {k}"
                );
            }
            for j in 0..n {
                let count = (0..n)
                    .filter(|&k| s.row_col[s.row_ptr[k]..s.row_ptr[k + 1]].contains(&j))
                    .count();
                assert_eq!(s.l_ptr[j + 1] - s.l_ptr[j], 1 + count, "column {j}");
            }
        }
    }

    #[test]
    fn minimum_degree_on_bit_sets_is_the_same_order() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move |n: usize| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
        };
        for n in [1, 2, 5, 17, 64, 96, 127, 128] {
            for density in [1, 3, 8] {
                let mut adj = vec![Vec::new(); n];
                for _ in 0..density * n {
                    let (a, b) = (next(n), next(n));
                    if a != b {
                        adj[a].push(b);
                        adj[b].push(a);
                    }
                }
                for row in adj.iter_mut() {
                    row.sort_unstable();
                    row.dedup();
                }
                let bits: Vec<u128> = adj
                    .iter()
                    .map(|row| row.iter().fold(0u128, |b, &w| b | 1u128 << w))
                    .collect();
                assert_eq!(minimum_degree_small(bits), minimum_degree(&adj), "n {n}");
            }
        }
    }

    #[test]
    fn supernodes_factor_a_random_graph_laplacian_that_solves_back() {
        // Irregular patterns: supernodes of every width, and lone columns.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move |n: usize| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
        };
        for (n, m) in [(1, 0), (2, 1), (40, 60), (700, 2_000), (3_000, 4_000)] {
            let edges: Vec<(usize, usize)> = (0..m).map(|_| (next(n), next(n))).collect();
            let weights: Vec<f64> = (0..m).map(|k| 0.5 + (k % 7) as f64).collect();
            let s = Symbolic::new(n, &edges);
            let ch0 = Cholesky::new(&s);
            assert!(ch0.sn_ptr.len() > 1 && ch0.sn_ptr[ch0.sn_ptr.len() - 1] == n);
            assert!(n < 700 || ch0.sn_ptr.windows(2).any(|w| w[1] - w[0] > 2));
            let mut values = vec![0.0; s.nnz()];
            let mut diag = vec![1.0; n];
            for i in 0..n {
                // Grounded everywhere a little: positive definite.
                values[s.slot(i, i).unwrap()] += diag[i];
            }
            for (&(a, b), &w) in edges.iter().zip(&weights) {
                if a != b {
                    values[s.slot(a, a).unwrap()] += w;
                    values[s.slot(b, b).unwrap()] += w;
                    values[s.slot(a, b).unwrap()] -= w;
                    diag[a] += w;
                    diag[b] += w;
                }
            }
            // Both kernels, whichever `factor` picks for this size.
            let mut up = ch0.clone();
            up.factor_up_looking(&s, &values).unwrap();
            let mut ch = ch0;
            ch.factor_supernodal(&s, &values).unwrap();
            let b: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
            let mut x = b.clone();
            ch.solve(&s, &mut x);
            let mut x_up = b.clone();
            up.solve(&s, &mut x_up);
            for i in 0..n {
                assert!((x[i] - x_up[i]).abs() < 1e-12, "n {n}, {i}");
            }
            let mut ax: Vec<f64> = x.clone();
            for (&(a, c), &w) in edges.iter().zip(&weights) {
                if a != c {
                    ax[a] += w * (x[a] - x[c]);
                    ax[c] += w * (x[c] - x[a]);
                }
            }
            for i in 0..n {
                assert!(
                    (ax[i] - b[i]).abs() < 1e-9,
                    "n {n}, {i}: {} vs {}",
                    ax[i],
                    b[i]
                );
            }
        }
    }

    #[test]
    fn refuses_an_indefinite_matrix() {
        let s = Symbolic::new(2, &[(0, 1)]);
        let mut values = vec![0.0; s.nnz()];
        values[s.slot(0, 0).unwrap()] = 1.0;
        values[s.slot(1, 1).unwrap()] = 1.0;
        values[s.slot(0, 1).unwrap()] = 2.0;
        assert!(matches!(
            Cholesky::new(&s).factor(&s, &values),
            Err(CholeskyError::NotPositiveDefinite { .. })
        ));
    }
}
