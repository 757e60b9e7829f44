export { crawlShardWorkflow, crawlWorkflow } from './crawl';
export { pauseUpdate, progressQuery, resumeUpdate, retryFailedUpdate, setRateUpdate } from './messages';
