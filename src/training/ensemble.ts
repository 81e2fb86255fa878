/**
 * The ensemble the engine serves: standardise, then average the class-1 probabilities of a
 * logistic regression and an MLP. Training and the TypeScript forward pass live here; the
 * same parameters become an ONNX graph in src/training/onnx-writer.ts, and the two must agree.
 */
import { fitStandardizer, standardize, type Standardizer } from './standardize';
import { DEFAULT_LOGREG_SETTINGS, logregProba, trainLogreg, type LogregModel, type LogregSettings } from './logreg';
import { DEFAULT_MLP_SETTINGS, mlpProba, trainMlp, type MlpModel, type MlpSettings } from './mlp';

export interface EnsembleSettings {
  readonly logreg: LogregSettings;
  readonly mlp: MlpSettings;
}

export const DEFAULT_ENSEMBLE_SETTINGS: EnsembleSettings = Object.freeze({
  logreg: DEFAULT_LOGREG_SETTINGS,
  mlp: DEFAULT_MLP_SETTINGS,
});

export interface EnsembleModel {
  readonly standardizer: Standardizer;
  readonly logreg: LogregModel;
  readonly mlp: MlpModel;
}

export interface EnsembleTraining {
  readonly model: EnsembleModel;
  readonly logregLoss: number[];
  readonly mlpLoss: number[];
}

/** `x` is raw (unstandardised), row-major `[rows, features]`. */
export function trainEnsemble(
  x: Float64Array,
  y: ArrayLike<number>,
  rows: number,
  features: number,
  settings: EnsembleSettings = DEFAULT_ENSEMBLE_SETTINGS,
): EnsembleTraining {
  const standardizer = fitStandardizer(x, rows, features);
  const z = standardize(standardizer, x, rows);
  const lr = trainLogreg(z, y, rows, features, settings.logreg);
  const mlp = trainMlp(z, y, rows, features, settings.mlp);
  return {
    model: { standardizer, logreg: lr.model, mlp: mlp.model },
    logregLoss: lr.lossHistory,
    mlpLoss: mlp.lossHistory,
  };
}

export interface EnsembleProba {
  readonly logreg: Float64Array;
  readonly mlp: Float64Array;
  /** The served probability of class 1: the mean of the two. */
  readonly ensemble: Float64Array;
}

/** Class-1 probabilities of each member and of the ensemble for raw rows. */
export function ensembleProba(model: EnsembleModel, x: ArrayLike<number>, rows: number): EnsembleProba {
  const z = standardize(model.standardizer, x, rows);
  const logreg = logregProba(model.logreg, z, rows);
  const mlp = mlpProba(model.mlp, z, rows);
  const ensemble = new Float64Array(rows);
  for (let i = 0; i < rows; i++) ensemble[i] = 0.5 * (logreg[i]! + mlp[i]!);
  return { logreg, mlp, ensemble };
}
