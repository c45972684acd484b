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
    pub fn new(n: usize, edges: &[(usize, usize)]) -> Self {
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
#[derive(Clone, Debug)]
pub struct Cholesky {
    l_row: Vec<usize>,
    l_val: Vec<f64>,
    next: Vec<usize>,
    x: Vec<f64>,
    work: Vec<f64>,
}

impl Cholesky {
    pub fn new(s: &Symbolic) -> Self {
        Self {
            l_row: vec![0; s.l_nnz()],
            l_val: vec![0.0; s.l_nnz()],
            next: vec![0; s.n],
            x: vec![0.0; s.n],
            work: vec![0.0; s.n],
        }
    }

    /// Factors the matrix whose upper-triangle values (in [`Symbolic::slot`] order) are `values`.
    /// With a split of the analysis, the two independent blocks' rows are
    /// factored on two threads, then the top's: every row does exactly what
    /// it would on one thread, so the factor is the same to the bit.
    pub fn factor(&mut self, s: &Symbolic, values: &[f64]) -> Result<(), CholeskyError> {
        let n = s.n;
        for k in 0..n {
            self.next[k] = s.l_ptr[k];
        }
        let Some((m, t)) = s.split else {
            return factor_rows(s, values, 0..n, 0, Rows::of(self));
        };
        let (p_m, p_t) = (s.l_ptr[m], s.l_ptr[t]);
        let (low_row, high_row) = self.l_row[..p_t].split_at_mut(p_m);
        let (low_val, high_val) = self.l_val[..p_t].split_at_mut(p_m);
        let (low_next, high_next) = self.next[..t].split_at_mut(m);
        let (low_x, high_x) = self.x[..t].split_at_mut(m);
        let low = Rows {
            l_row: low_row,
            l_val: low_val,
            next: low_next,
            x: low_x,
            base_p: 0,
        };
        let high = Rows {
            l_row: high_row,
            l_val: high_val,
            next: high_next,
            x: high_x,
            base_p: p_m,
        };
        let (a, b) = std::thread::scope(|scope| {
            let other = scope.spawn(|| factor_rows(s, values, m..t, m, high));
            let here = factor_rows(s, values, 0..m, 0, low);
            (here, other.join())
        });
        a?;
        match b {
            Ok(r) => r?,
            // A panic on the other thread is a bug; show it as ours.
            Err(panic) => std::panic::resume_unwind(panic),
        }
        factor_rows(s, values, t..n, 0, Rows::of(self))
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
        // L·y = b (columns: the diagonal is first in each).
        for j in 0..n {
            let start = s.l_ptr[j];
            work[j] /= self.l_val[start];
            let yj = work[j];
            for p in (start + 1)..self.next[j] {
                work[self.l_row[p]] -= self.l_val[p] * yj;
            }
        }
        // Lᵀ·x = y
        for j in (0..n).rev() {
            let start = s.l_ptr[j];
            let mut v = work[j];
            for p in (start + 1)..self.next[j] {
                v -= self.l_val[p] * work[self.l_row[p]];
            }
            work[j] = v / self.l_val[start];
        }
    }
}

/// The part of a factor some rows work on: the entries of columns
/// `[base, base + next.len())` (positions from `base_p`), their fill
/// pointers and their slots of the work vector.
struct Rows<'a> {
    l_row: &'a mut [usize],
    l_val: &'a mut [f64],
    next: &'a mut [usize],
    x: &'a mut [f64],
    base_p: usize,
}

impl<'a> Rows<'a> {
    fn of(c: &'a mut Cholesky) -> Self {
        Rows {
            l_row: &mut c.l_row,
            l_val: &mut c.l_val,
            next: &mut c.next,
            x: &mut c.x,
            base_p: 0,
        }
    }
}

/// Up-looking factorization of `rows`, which touch only the columns of
/// `part` (from column `base`): row k of L from the triangular solve with
/// the rows above it, then its diagonal.
fn factor_rows(
    s: &Symbolic,
    values: &[f64],
    rows: std::ops::Range<usize>,
    base: usize,
    part: Rows<'_>,
) -> Result<(), CholeskyError> {
    let Rows {
        l_row,
        l_val,
        next,
        x,
        base_p,
    } = part;
    for k in rows {
        let col = s.a_ptr[k]..s.a_ptr[k + 1];
        for (&row, &v) in s.a_row[col.clone()].iter().zip(&values[col]) {
            x[row - base] = v;
        }
        let mut d = x[k - base];
        x[k - base] = 0.0;
        for &i in &s.row_col[s.row_ptr[k]..s.row_ptr[k + 1]] {
            let il = i - base;
            let start = s.l_ptr[i] - base_p;
            let lki = x[il] / l_val[start];
            x[il] = 0.0;
            let end = next[il] - base_p;
            for (&r, &v) in l_row[start + 1..end].iter().zip(&l_val[start + 1..end]) {
                x[r - base] -= v * lki;
            }
            d -= lki * lki;
            l_row[end] = k;
            l_val[end] = lki;
            next[il] += 1;
        }
        if d <= 0.0 || !d.is_finite() {
            return Err(CholeskyError::NotPositiveDefinite { row: k, pivot: d });
        }
        let kl = k - base;
        let p = next[kl] - base_p;
        next[kl] += 1;
        l_row[p] = k;
        l_val[p] = d.sqrt();
    }
    Ok(())
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
