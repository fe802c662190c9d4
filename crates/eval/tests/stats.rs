//! Welch's test against scipy, Holm's correction on a hand example, comparison tables.

use attnlab_eval::quantity::Quantity;
use attnlab_eval::stats::compare::{Arm, comparison_table};
use attnlab_eval::stats::holm::holm;
use attnlab_eval::stats::welch::{NoTest, welch};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

/// Expected values from scipy 1.17.1 (computed independently of statrs):
/// ```python
/// from scipy import stats
/// r = stats.ttest_ind(a, b, equal_var=False)
/// ci = r.confidence_interval(0.95)
/// print(r.statistic, r.pvalue, r.df, ci.low, ci.high)
/// ```
const CASES: [(&[f64], &[f64], [f64; 5]); 3] = [
    (
        &[1.93, 1.95, 1.91],
        &[1.89, 1.90, 1.88, 1.905],
        [
            2.8301102115507337,
            0.06817827827472331,
            2.924546838925192,
            -0.0051144292270798655,
            0.07761442922707965,
        ],
    ),
    (
        &[0.50, 0.62, 0.47, 0.55, 0.58],
        &[0.51, 0.49],
        [
            1.5309558014062874,
            0.18857809424247016,
            4.812589494177148,
            -0.030752849862070566,
            0.11875284986207064,
        ],
    ),
    (
        &[2.10, 2.12, 2.09],
        &[1.90, 1.91, 1.89],
        [
            19.289893727027057,
            0.0001233517009611803,
            3.448275862068953,
            0.17212449381437764,
            0.23454217285228998,
        ],
    ),
];

#[test]
fn welch_matches_scipy() {
    for (a, b, [t, p, df, lo, hi]) in CASES {
        let w = welch(a, b, 0.95).expect("two samples of at least 2");
        assert!(close(w.t, t, 1e-9), "t {} vs {t}", w.t);
        assert!(close(w.df, df, 1e-9), "df {} vs {df}", w.df);
        assert!(close(w.p, p, 1e-8), "p {} vs {p}", w.p);
        assert!(
            close(w.ci_low, lo, 1e-8) && close(w.ci_high, hi, 1e-8),
            "ci [{}, {}] vs [{lo}, {hi}]",
            w.ci_low,
            w.ci_high
        );
        // Swapping the samples negates t and the interval, keeps p.
        let s = welch(b, a, 0.95).expect("swap");
        assert!(close(s.t, -t, 1e-9) && close(s.p, p, 1e-8) && close(s.ci_low, -hi, 1e-8));
    }
}

#[test]
fn welch_refuses_one_seed_and_zero_variance() {
    assert_eq!(welch(&[1.0], &[1.0, 2.0], 0.95), Err(NoTest::TooFewSeeds));
    assert_eq!(welch(&[1.0, 2.0], &[3.0, f64::NAN], 0.95), Err(NoTest::TooFewSeeds));
    assert_eq!(welch(&[1.0, 1.0], &[2.0, 2.0], 0.95), Err(NoTest::NoVariance));
}

#[test]
fn holm_on_a_hand_example() {
    // Sorted: 0.005, 0.01, 0.03, 0.04 -> 4*0.005 = 0.02, 3*0.01 = 0.03, 2*0.03 = 0.06,
    // max(0.06, 1*0.04) = 0.06; back in input order:
    let adj = holm(&[Some(0.01), Some(0.04), Some(0.03), Some(0.005)]);
    let want = [0.03, 0.06, 0.06, 0.02];
    for (a, w) in adj.iter().zip(want) {
        assert!(close(a.expect("tested"), w, 1e-12), "{adj:?}");
    }
    // Missing tests do not count towards m, and values are capped at 1.
    assert_eq!(holm(&[Some(0.01), None, Some(0.04)]), vec![Some(0.02), None, Some(0.04)]);
    assert_eq!(holm(&[Some(0.6), Some(0.7)]), vec![Some(1.0), Some(1.0)]);
}

fn arm(label: &str, values: &[f64]) -> Arm {
    Arm {
        label: label.into(),
        runs: (0..values.len()).map(|i| format!("{label}_s{i}")).collect(),
        seeds: vec![None; values.len()],
        values: values.to_vec(),
    }
}

#[test]
fn table_tests_each_row_and_corrects_across_rows() {
    let base = arm("dot", &[1.90, 1.91, 1.89]);
    let pairs = vec![
        (arm("idw", &[2.10, 2.12, 2.09]), base.clone()),
        (arm("rbf", &[1.93, 1.95, 1.91]), arm("dot", &[1.89, 1.90, 1.88, 1.905])),
        (arm("cosine", &[1.95]), base.clone()),
    ];
    let loss = Quantity::of_column(&attnlab_train::tasks::report::loss_columns()[0]);
    let t = comparison_table(&loss, &pairs);
    assert_eq!(t.rows.len(), 3);
    let (idw, rbf, cos) = (&t.rows[0], &t.rows[1], &t.rows[2]);
    assert!(idw.excludes_zero() && idw.significant(), "{idw:?}");
    // Holm with two tests: the smaller p doubled, the larger kept (if not below the first).
    let (p0, p1) = (idw.p.expect("p"), rbf.p.expect("p"));
    assert!(close(idw.p_holm.expect("holm"), 2.0 * p0, 1e-12));
    assert!(close(rbf.p_holm.expect("holm"), p1.max(2.0 * p0), 1e-12));
    assert!(!rbf.excludes_zero() && !rbf.significant());
    assert!(cos.p.is_none() && cos.p_holm.is_none() && cos.no_test == Some(NoTest::TooFewSeeds));
    assert!(close(cos.diff, 1.95 - 1.90, 1e-12) && cos.n == 1 && cos.n_base == 3);
}
