export { startEngine, type Engine } from './engine';
