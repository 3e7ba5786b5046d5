// Shared data types of the data pipeline. Images are float32 HWC in [0, 1], RGB.

export interface Image {
  data: Float32Array; // length height*width*channels, row-major HWC
  width: number;
  height: number;
  channels: number; // 3 for every dataset Locus ships
}

/** 8-bit RGB image as decoded (HWC, 3 channels): the source native resampling reads. */
export interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** Box in pixel coordinates of some frame: x0,y0 inclusive top-left corner, x1,y1 exclusive (continuous). */
export type Box = [x0: number, y0: number, x1: number, y1: number];

/**
 * Where a view came from: crop box in *source* pixel coordinates, then resize to size x size,
 * then horizontal flip, then rotation by 90°·rotation counter-clockwise (compose order crop → resize → flip → rotate).
 */
export interface ViewGeometry {
  box: Box;
  size: number; // output side in pixels (square views)
  flipped: boolean;
  rotation: 0 | 1 | 2 | 3; // quarter turns, counter-clockwise
}
