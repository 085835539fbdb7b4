//! Element-wise activations of the models' MLPs, written so the compiler vectorizes them (no
//! per-value libm call): the SwiGLU gate runs over every hidden unit of every token, tens of
//! millions of values per prefill. Entry point: [`silu_mul`].

/// `e^x` with Cephes' single-precision range reduction and polynomial: within 2 ulp of
/// `f32::exp` on `[-87, 88]`, the input clamped to that range (so `0 < e^x < f32::MAX`).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E).round_ties_even();
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4_f32;
    let p = p.mul_add(r, 1.398_199_9e-3);
    let p = p.mul_add(r, 8.333_452e-3);
    let p = p.mul_add(r, 4.166_579_6e-2);
    let p = p.mul_add(r, 1.666_666_5e-1);
    let p = p.mul_add(r, 0.5);
    let y = p.mul_add(r * r, r) + 1.0;
    // 2^n as the exponent field, built without a float-to-int conversion (whose saturation
    // test would keep the loop scalar): adding 2^23 leaves the integer n + 127 (within 1..=254
    // after the clamp) in the low mantissa bits, and the shift moves them into the exponent.
    let biased = (n + 127.0 + 8_388_608.0).to_bits();
    y * f32::from_bits(biased << 23)
}

widest! {
    /// `gate[i] = silu(gate[i]) * up[i]` (SwiGLU), where `silu(g) = g / (1 + e^-g)`.
    pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
        for (g, u) in gate.iter_mut().zip(up) {
            *g = *g / (1.0 + exp(-*g)) * u;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_the_standard_one() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x <= 88.0 {
            let (a, b) = (exp(x), x.exp());
            worst = worst.max((a - b).abs() / b);
            x += 0.001_7;
        }
        assert!(worst <= 2.5e-7, "relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        // Clamped, never inf or 0: SiLU of large magnitudes stays finite.
        assert!(exp(1e9).is_finite() && exp(-1e9) > 0.0);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn silu_mul_is_the_swiglu_gate() {
        let mut g = vec![-20.0, -1.0, 0.0, 0.5, 3.0, 90.0, -100.0];
        let u = vec![2.0; g.len()];
        let want: Vec<f32> = g
            .iter()
            .map(|&v: &f32| v / (1.0 + (-v).exp()) * 2.0)
            .collect();
        silu_mul(&mut g, &u);
        for (a, b) in g.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
}
