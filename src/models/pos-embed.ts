/**
 * Fixed 2-D sin-cos position tables (docs/reference.md#position-tables, MAE's get_2d_sincos_pos_embed without class token).
 *
 * Token k of a rows × cols grid (row-major) has col = k mod cols, row = k div cols. Dims
 * 0..D/2-1 hold the 1-D table of size D/2 at `col`, dims D/2..D-1 the 1-D table at `row`.
 * The 1-D table of size d at position p is [sin(p·ω_0..ω_{d/2-1}), cos(p·ω_0..)] with
 * ω_i = 1 / 10000^(i / (d/2)). Audio grids are 8 (frequency) × T/16 (time), so the FIRST half
 * encodes time. Computed in float64 and rounded once, as numpy then .float().
 */
export function sincosTable2d(dim: number, rows: number, cols: number): Float32Array {
  if (dim % 4 !== 0) throw new Error(`sin-cos position table: width ${dim} is not a multiple of 4`);
  const half = dim / 2;
  const quarter = dim / 4;
  const omega = new Float64Array(quarter);
  for (let i = 0; i < quarter; i++) omega[i] = 1 / 10000 ** (i / quarter);
  const out = new Float32Array(rows * cols * dim);
  for (let k = 0; k < rows * cols; k++) {
    const col = k % cols;
    const row = Math.floor(k / cols);
    const o = k * dim;
    for (let i = 0; i < quarter; i++) {
      out[o + i] = Math.sin(col * omega[i]);
      out[o + quarter + i] = Math.cos(col * omega[i]);
      out[o + half + i] = Math.sin(row * omega[i]);
      out[o + half + quarter + i] = Math.cos(row * omega[i]);
    }
  }
  return out;
}
