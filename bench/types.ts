/** One measured figure. `ratio` is value / baseline, both measured in the same run. */
export interface Figure {
  name: string;
  value: number;
  unit: string;
  baseline: number | null;
  ratio: number | null;
  note?: string;
}

export interface Bench {
  name: string;
  run(): Promise<Figure[]>;
}
