// The vendored libraries, in one place: a version bump changes these names (and index.html's).
import { h, render, Fragment } from '../vendor/preact-11.2.0.mjs';
import htm from '../vendor/htm-3.1.1.mjs';

export { h, render, Fragment };
export {
  useState, useEffect, useRef, useMemo, useCallback, useReducer, useId,
} from '../vendor/preact-hooks-11.2.0.mjs';

// Tagged templates instead of JSX: no build step. Text in ${} is always rendered as text.
export const html = htm.bind(h);
