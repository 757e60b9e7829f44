export { crawlWorkflow } from './crawl';
export { progressQuery, setRateUpdate } from './messages';
