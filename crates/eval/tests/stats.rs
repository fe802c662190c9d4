//! The t-tests (Welch, paired) and TOST against scipy and statsmodels, the noncentral t, power
//! and detectable effect against statsmodels, Fieller's interval and Holm's correction on hand
//! examples, comparison tables.

use attnlab_eval::quantity::Quantity;
use attnlab_eval::stats::compare::{Arm, comparison_table};
use attnlab_eval::stats::holm::holm;
use attnlab_eval::stats::power::{Design, detectable_effect, noncentral_t_cdf, power};
use attnlab_eval::stats::ratio::fieller;
use attnlab_eval::stats::tost::tost;
use attnlab_eval::stats::ttest::{NoTest, TestKind, paired, welch};

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

/// scipy 1.17.1 `stats.ttest_rel(a, b)` and its `confidence_interval(0.95)`, and statsmodels
/// 0.15.0 `ttost_paired(a, b, -0.02, 0.02)` (pvalue, and the p of each one-sided test):
/// ```python
/// a = [0.61, 0.64, 0.60, 0.66]; b = [0.60, 0.62, 0.61, 0.63]
/// ```
#[test]
fn paired_t_and_its_tost_match_scipy_and_statsmodels() {
    let (a, b) = ([0.61, 0.64, 0.60, 0.66], [0.60, 0.62, 0.61, 0.63]);
    let t = paired(&a, &b, 0.95).expect("four pairs");
    assert_eq!(t.kind, TestKind::Paired);
    assert!(close(t.t, 1.4638501094227996, 1e-9) && close(t.df, 3.0, 0.0), "{t:?}");
    assert!(close(t.p, 0.23944259863600298, 1e-9), "{t:?}");
    assert!(close(t.ci_low, -0.014675308837960168, 1e-9) && close(t.ci_high, 0.039675308837960194, 1e-9));
    let e = tost(&t, 0.02).expect("positive margin");
    assert!(close(e.p_low, 0.015937097551778568, 1e-9), "{e:?}");
    assert!(close(e.p_high, 0.22221904256736585, 1e-9), "{e:?}");
    assert!(close(e.p, 0.22221904256736585, 1e-9));
    assert_eq!(paired(&[1.0, 2.0], &[0.0, 1.0], 0.95), Err(NoTest::NoVariance));
    assert_eq!(paired(&[1.0], &[0.0], 0.95), Err(NoTest::TooFewSeeds));
}

/// statsmodels 0.15.0 `ttost_ind(x, y, low, upp, usevar="unequal")` on the first two Welch cases:
/// `(pvalue, p of H0: diff <= low, p of H0: diff >= upp)`.
/// Two samples, a margin and the expected `(p, p_low, p_high)`.
type TostCase<'a> = (&'a [f64], &'a [f64], f64, [f64; 3]);

#[test]
fn welch_tost_matches_statsmodels() {
    let cases: [TostCase; 2] = [
        (CASES[0].0, CASES[0].1, 0.1, [0.008277601527263393, 0.0009930339662978262, 0.008277601527263393]),
        (CASES[1].0, CASES[1].1, 0.05, [0.42158860846049984, 0.011728832295042227, 0.42158860846049984]),
    ];
    for (a, b, delta, [p, p_low, p_high]) in cases {
        let e = tost(&welch(a, b, 0.95).expect("welch"), delta).expect("margin");
        assert!(close(e.p, p, 1e-9) && close(e.p_low, p_low, 1e-9) && close(e.p_high, p_high, 1e-9), "{e:?}");
    }
    // The TOST p is below alpha exactly when the 1 - 2 alpha interval lies inside the margin.
    let w = welch(CASES[0].0, CASES[0].1, 0.95).expect("welch");
    let (lo, hi) = w.interval(0.90);
    assert!(lo > -0.1 && hi < 0.1);
    assert!(tost(&w, 0.0).is_none() && tost(&w, f64::NAN).is_none());
}

/// scipy 1.17.1 `stats.nct.cdf(x, df, nc)`.
#[test]
fn noncentral_t_matches_scipy() {
    let cases = [
        (2.0, 1.0, 1.5, 0.4910199015177237),
        (-1.0, 3.0, 0.5, 0.09212120981435942),
        (4.3, 2.0, 6.0, 0.16393126245075726),
        (1.2, 17.0, 2.0, 0.2115488815782601),
        (12.7, 1.0, 3.0, 0.813803218007604),
    ];
    for (x, df, nc, want) in cases {
        let got = noncentral_t_cdf(x, df, nc);
        assert!(close(got, want, 1e-8), "G({x}; {df}, {nc}) = {got}, scipy {want}");
    }
}

/// statsmodels 0.15.0: `TTestIndPower().power(effect_size=1.5, nobs1=4, ratio=1, alpha=0.05)`,
/// `TTestPower().power(effect_size=0.8, nobs=6, alpha=0.05)`, and
/// `solve_power(effect_size=None, nobs1=n, ratio=r, alpha=a, power=0.8)` (two-sided).
#[test]
fn power_and_detectable_effect_match_statsmodels() {
    let p = power(Design::Independent(4, 4), 1.5, 0.05).expect("df");
    assert!(close(p, 0.42999755618003055, 1e-7), "{p}");
    let p = power(Design::Paired(6), 0.8, 0.05).expect("df");
    assert!(close(p, 0.35617376715808463, 1e-7), "{p}");
    let independent = [
        ((2, 2), 0.05, 5.653489341914222),
        ((3, 3), 0.05, 3.070892269599019),
        ((10, 10), 0.05 / 6.0, 1.7255429521870305),
        ((5, 2), 0.05, 2.939944300355782),
    ];
    for ((a, b), alpha, want) in independent {
        let d = detectable_effect(Design::Independent(a, b), alpha, 0.8).expect("df");
        // statsmodels' root finder stops at its own tolerance (a few 1e-6 here); ours solves
        // power(d) = 0.8 to 1e-9.
        assert!(close(d, want, 1e-5), "{a} vs {b} at {alpha}: {d}, statsmodels {want}");
        let p = power(Design::Independent(a, b), d, alpha).expect("df");
        assert!(close(p, 0.8, 1e-8), "{p}");
    }
    for (n, alpha, want) in
        [(2, 0.05, 11.549889754978167), (3, 0.05, 3.264043552819638), (10, 0.05 / 6.0, 1.3714409532441014)]
    {
        let d = detectable_effect(Design::Paired(n), alpha, 0.8).expect("df");
        assert!(close(d, want, 1e-5), "{n} pairs at {alpha}: {d}, statsmodels {want}");
    }
    assert!(detectable_effect(Design::Paired(1), 0.05, 0.8).is_none());
}

#[test]
fn fieller_on_a_hand_example() {
    // a = 10, b = 5, var 1 and 0.25, no covariance, q = 2: A = 25 - 4 * 0.25 = 24, B = 50,
    // C = 100 - 4 = 96, B^2 - AC = 2500 - 2304 = 196, so theta = (50 -+ 14) / 24 = [1.5, 8/3].
    let r = fieller(10.0, 5.0, 1.0, 0.25, 0.0, 2.0).expect("bounded");
    assert!(
        close(r.ratio, 2.0, 1e-15) && close(r.low, 1.5, 1e-12) && close(r.high, 8.0 / 3.0, 1e-12),
        "{r:?}"
    );
    // A positive covariance narrows it: B = 50 - 4 * 0.2 = 49.2, C = 96,
    // disc = 49.2^2 - 24 * 96 = 116.64, sqrt = 10.8: [38.4 / 24, 60 / 24] = [1.6, 2.5].
    let r = fieller(10.0, 5.0, 1.0, 0.25, 0.2, 2.0).expect("bounded");
    assert!(close(r.low, 1.6, 1e-12) && close(r.high, 2.5, 1e-12), "{r:?}");
    // A denominator indistinguishable from zero (b^2 / v_b < q^2): no bounded interval.
    assert!(fieller(10.0, 1.0, 1.0, 1.0, 0.0, 2.0).is_none());
}
