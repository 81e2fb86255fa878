/**
 * The flags that name a labelled CSV, the same in `tradeflow eval` and `tradeflow train` so a
 * file evaluated with one is trained on with the other by the same four flags.
 */
import { listFlag, UsageError } from './flags';

export const CSV_FLAGS = {
  csv: { type: 'string' },
  'label-column': { type: 'string' },
  positive: { type: 'string' },
  'drop-columns': { type: 'string' },
} as const;

export interface CsvSource {
  csv: string;
  labelColumn: string;
  positive: string;
  dropColumns: string[];
}

/** Throws UsageError when one of the three required flags is missing. */
export function csvSource(values: { csv?: string; 'label-column'?: string; positive?: string; 'drop-columns'?: string }): CsvSource {
  if (!values.csv) throw new UsageError('--csv FILE is required');
  if (!values['label-column']) throw new UsageError('--label-column NAME is required');
  if (!values.positive) throw new UsageError('--positive VALUE is required');
  return { csv: values.csv, labelColumn: values['label-column'], positive: values.positive, dropColumns: listFlag(values['drop-columns'] ?? '') };
}
